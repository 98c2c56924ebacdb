# catalog: build, test and run the lab.  `make help` lists the targets.
# Everything builds into $(BUILD)/ (default build/).  SANITIZER=address,undefined builds
# an instrumented tree into build-san/, SANITIZER=thread (ThreadSanitizer) into build-tsan/;
# FUZZ=1 builds the libFuzzer drivers with clang into build-fuzz/ (make fuzzers).  WERROR=1
# turns warnings into errors (CI sets it).

SHELL := /bin/bash
CC ?= cc
BUILD ?= build
PG_INCLUDE := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wvla -Wpointer-arith -Wcast-qual -Wno-unused-parameter -Wno-format-truncation
CFLAGS ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Ilib -I$(PG_INCLUDE)
ALL_CFLAGS = -std=c11 $(WARNINGS) $(CFLAGS) -pthread -MMD -MP
ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
ifeq ($(SANITIZER),thread)
BUILD := build-tsan
ALL_CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
else ifneq ($(SANITIZER),)
BUILD := build-san
ALL_CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif
ifeq ($(FUZZ),1)
BUILD := build-fuzz
CC := clang
CFLAGS := -O1 -g
WARNINGS := $(filter-out -Wno-format-truncation,$(WARNINGS))
ALL_CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
LDFLAGS += -fsanitize=fuzzer,address,undefined
endif
LDLIBS := -lpq -ljansson -lm -pthread

# Who owns what: lib/ holds the code the three programs share (libcatalog.a); server/,
# loadtest/ and dbtool/ each hold what one program owns.  A program's objects other than its
# main.o also go into an archive of their own (libserver.a, libloadtest.a, libdbtool.a), so a
# unit test links exactly the modules it calls, from whichever program owns them.
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard lib/*.c))
LIB_A := $(BUILD)/libcatalog.a

# program_objects DIR: the objects of DIR/*.c other than DIR/main.o.
program_objects = $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
SERVER_A := $(BUILD)/libserver.a
LOADTEST_A := $(BUILD)/libloadtest.a
DBTOOL_A := $(BUILD)/libdbtool.a
PROGRAMS := $(BUILD)/catalog-server $(BUILD)/catalog-loadtest $(BUILD)/catalog-db

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Micro-benchmarks (make bench): built like unit tests, never run by make test.
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/tests/%)
# libFuzzer drivers, one per parser of untrusted input: build-fuzz/fuzz_NAME (make fuzzers).
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)

.PHONY: all programs clean test unit integration format lint help deps up down status scale \
	restart loadtest ceiling sweep compare demo bench fuzz fuzzers soak sanitize test-containers \
	test-vm figures
all: $(PROGRAMS) $(UNIT_BIN)
programs: $(PROGRAMS)

# A program's sources see its own headers and lib/'s; the unit tests see every program's.
$(BUILD)/server/%.o: CPPFLAGS += -Iserver
$(BUILD)/loadtest/%.o: CPPFLAGS += -Iloadtest
$(BUILD)/dbtool/%.o: CPPFLAGS += -Idbtool
$(BUILD)/tests/unit/%.o $(BUILD)/tests/bench/%.o $(BUILD)/fuzz/%.o: \
	CPPFLAGS += -Iserver -Iloadtest -Idbtool

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
$(SERVER_A): $(call program_objects,server)
$(LOADTEST_A): $(call program_objects,loadtest)
$(DBTOOL_A): $(call program_objects,dbtool)
$(LIB_A) $(SERVER_A) $(LOADTEST_A) $(DBTOOL_A):
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/catalog-server: $(BUILD)/server/main.o $(SERVER_A) $(LIB_A)
$(BUILD)/catalog-loadtest: $(BUILD)/loadtest/main.o $(LOADTEST_A) $(LIB_A)
$(BUILD)/catalog-db: $(BUILD)/dbtool/main.o $(DBTOOL_A) $(LIB_A)
$(PROGRAMS):
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# dbtool/sql_files.c and server/statements.c embed sql/*.sql with .incbin, which -MMD does not
# see.
$(BUILD)/dbtool/sql_files.o: sql/schema.sql sql/rollup.sql
$(BUILD)/server/statements.o: sql/statements.sql
# A unit test, a micro-benchmark or a fuzz driver (below) links the archives: only the modules it
# calls (and what they call) come in.
TEST_LINK := $(SERVER_A) $(LOADTEST_A) $(DBTOOL_A) $(LIB_A)
$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(TEST_LINK)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/bench_%: $(BUILD)/tests/bench/bench_%.o $(TEST_LINK)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The objects of the unit tests, micro-benchmarks and fuzz drivers are made by a chain of pattern
# rules, so make would delete them as intermediate files after linking; the next run (a second
# make up) then finds them named in their .d files and compiles every one again.  Kept instead.
.SECONDARY: $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.o) \
	$(BENCH_SRC:tests/bench/%.c=$(BUILD)/tests/bench/%.o) $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%.o)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

deps:
	@scripts/install-deps.sh all

# The test command of the README and of .ci/run: make lint, unit and integration tests against a
# throwaway PostgreSQL (and nginx, Prometheus, Chromium) started by the tests themselves, the
# same suite against the ASan+UBSan build (scripts/test-sanitized.sh), and 30 s of fuzzing (6 s a driver).
# Every part runs even when an earlier one fails; tests/all.sh prints the closing total.
# The four builds compile on every core (TEST_JOBS, default nproc): 36 s instead of 75 s from
# a fresh clone on 2 cores.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
test:
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) all
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) sanitize
	@tests/all.sh $(BUILD)

unit: all
	@tests/run.sh $(BUILD) unit

integration: all
	@tests/run.sh $(BUILD) integration

# The ASan+UBSan tree (everything) and the ThreadSanitizer tree (the programs: its pass runs the
# server's integration tests, where the worker threads share the pool).
sanitize:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined all
	@$(MAKE) --no-print-directory SANITIZER=thread programs

# Long runs, never part of make test.  fuzz: every driver FUZZ_SECONDS (default 600) from the
# corpus it grew last time (build-fuzz/corpus/); soak: 1,000,000 requests, RSS must stay flat,
# then test_pool_kills for KILL_ROUNDS (default 3000) rounds of backends killed at random points
# of cancel and hand-over (make test runs a short version of it).
fuzz:
	@scripts/fuzz.sh --keep --seconds $(or $(FUZZ_SECONDS),600)
# fuzzers: every driver, built with clang (libFuzzer, ASan, UBSan); scripts/fuzz.sh calls it.
ifeq ($(FUZZ),1)
fuzzers: $(FUZZ_BIN)
build-fuzz/fuzz_%: build-fuzz/fuzz/fuzz_%.o $(TEST_LINK)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
else
fuzzers:
	@$(MAKE) --no-print-directory FUZZ=1 fuzzers
endif
soak: all
	@scripts/soak.sh $(BUILD)
	@KILL_ROUNDS=$(or $(KILL_ROUNDS),3000) TEST_TIMEOUT_S=3600 BESIDE_TESTS="" \
		tests/run.sh $(BUILD) integration test_pool_kills

# lint: shellcheck on every shell script, clang-format --dry-run -Werror on every C file (part
# of make test); format: rewrites the C files to .clang-format, then lints.
lint:
	@scripts/lint.sh
format:
	@scripts/lint.sh --format

clean:
	rm -rf build build-san build-tsan build-fuzz

# The lab (docs/lab.md, the table of commands).  Thin aliases over scripts/lab.sh.
# up installs the packages before the first build: a fresh machine has no libpq-dev yet.
up:
	@scripts/install-deps.sh lab
	@$(MAKE) --no-print-directory all
	@scripts/lab.sh up
down:
	@scripts/lab.sh down $(if $(PURGE),--purge)
status:
	@scripts/lab.sh status
scale: all
	@scripts/lab.sh scale $(SERVERS)
restart: all
	@scripts/lab.sh restart
loadtest: all
	@scripts/lab.sh loadtest
ceiling: all
	@scripts/lab.sh ceiling
sweep: all
	@scripts/lab.sh sweep $(SERVERS)
compare:
	@scripts/lab.sh compare
demo: all
	@scripts/lab.sh demo
bench: all $(BENCH_BIN)
	@for b in $(BENCH_BIN); do $$b || exit 1; done
	@scripts/bench.sh
	@scripts/figures.py rewrite
	@if [ "$(BENCH_FIGURES)" != 0 ]; then scripts/figures.py bench; fi

# bench: BENCHMARKS.md's figures go into README.md (figures.py rewrite), then a fresh recording of
# the lab's figures is printed beside docs/figures/recorded.json.
# The docs' measured figures (scripts/figures.py, CONTRIBUTING.md "Figures"): a throwaway lab on
# free ports runs the scenario's steps twice and make demo (about 20 minutes, stops itself after
# 45), writes docs/figures/recorded.json, then every marked figure in the docs is rewritten from
# it.  ADD=1 adds the rounds to those the file has (another day, another machine).
figures: all
	@scripts/figures.py record $(if $(filter-out 0,$(ADD)),--add)
	@scripts/figures.py rewrite

# The deploy layouts built and run for real under podman (tests/containers/run.sh): the image,
# both Compose layouts, the Kubernetes pods.  As root; never part of make test.
# .ci/run runs it after make test.  CONTAINER_TESTS="image compose" runs only those sections.
test-containers:
	@tests/containers/run.sh $(CONTAINER_TESTS)

# The lab's CPU quota on a real cgroup v2 machine: a Debian 12 guest under qemu/KVM with systemd
# (tests/vm/run.sh): a systemd user scope, root's own groups, pinning, the sudo install path.
# As root; never part of make test.  .ci/run runs it after test-containers.
# VM_TESTS="scope root" runs only those sections.
test-vm:
	@tests/vm/run.sh $(VM_TESTS)

help:
	@echo "make            build catalog-server, catalog-loadtest, catalog-db into $(BUILD)/"
	@echo "make up         install what is missing, start PostgreSQL (seeded), one server on 3000, Prometheus"
	@echo "make status     processes, ports, pools, orders in the database"
	@echo "make loadtest   the scenario's load test against BASE_URL (default: the running entry point)"
	@echo "make scale SERVERS=N   N servers behind nginx on 8080, pools split from the budget"
	@echo "                BALANCE=round_robin|least_conn|p2c: how nginx picks a server (kept until changed)"
	@echo "                DB_REPLICAS=M: M hot standbys of PostgreSQL the servers read from (kept; 0 retires them)"
	@echo "                DB_CPUS=x: each PostgreSQL instance's CPUs (kept; a change restarts PostgreSQL)"
	@echo "make ceiling    the highest request rate the current layout sustains within the SLO"
	@echo "make sweep SERVERS=\"1 2 3 4\"   the ceiling at each count, where the CPU went, the USL fit"
	@echo "make compare    saved results side by side: runs paired by mix and size, ratios, ceilings"
	@echo "make demo       one server then two, both mixes, each layout's ceiling (under two minutes)"
	@echo "make restart    rolling restart of every server, one at a time (no failed GET behind nginx)"
	@echo "make down       stop everything (PURGE=1 also deletes the data)"
	@echo "make test       every test (what .ci/run calls)"
	@echo "make lint       shellcheck on every script, clang-format --dry-run on every C file"
	@echo "make format     rewrite the C files to .clang-format"
	@echo "make bench      benchmarks (never part of make test); BENCH_FIGURES=0 skips the docs' figures"
	@echo "make figures    record the docs' figures in a throwaway lab, rewrite them in the docs (ADD=1 adds to the kept rounds)"
	@echo "make test-containers   the Docker image, Compose layouts and Kubernetes pods run under podman"
	@echo "make test-vm    SERVER_CPUS on real cgroup v2 (systemd user scope, root, pinning, sudo) in a Debian 12 VM"
	@echo "make fuzz       every libFuzzer driver for FUZZ_SECONDS (default 600) each, ASan+UBSan"
	@echo "make soak       1,000,000 requests to one server (RSS must stay flat), then 3000 rounds of killed backends"
