#!/usr/bin/env bash
# test_lab_root_home.sh: as root, a lab whose folder sits under a folder closed to other users
# (a clone in /root, mode 0700 on Debian).  PostgreSQL runs as the postgres user, which cannot
# enter it, so the lab keeps the cluster in /var/lib/catalog-lab/<hash> and says so; `down
# --purge` deletes it.  As a normal user there is nothing to test (PostgreSQL runs as them).
# ok never fails, so "CONDITION && ok ... || fail ..." is an if/else here.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$PWD
export CATALOG_BUILD=${CATALOG_BUILD:-$repo/build}
# shellcheck source=tests/integration/common/lab_env.sh
source tests/integration/common/lab_env.sh

report_start lab-root-home
if [[ $(id -u) -ne 0 ]]; then
	ok "not root: PostgreSQL runs as $(id -un), who can enter the lab's folder"
	finish
	exit 0
fi
need_build

lab_env_setup root-home
rmdir "$LAB_DIR" # the lab's folder is the one below
home=$(mktemp -d /tmp/catalog-root-home.XXXXXX) # mktemp -d: mode 0700, like /root
export LAB_DIR=$home/catalog/var
pg_dir=""
cleanup() {
	lab_cleanup
	[[ -n $pg_dir && $pg_dir == /var/lib/catalog-lab/* ]] && rm -rf "$pg_dir"
	rmdir /var/lib/catalog-lab 2>/dev/null || true
	rm -rf "$home"
}
trap cleanup EXIT

out=$("$lab" up 2>&1) && ok "up with LAB_DIR in a 0700 folder" ||
	{ fail "up with LAB_DIR in a 0700 folder" "$(tail -n 15 <<<"$out")"; finish; }
pg_dir=$(sed -n 's/.*the database lives in \(\/var\/lib\/catalog-lab\/[0-9a-f]*\).*/\1/p' <<<"$out" | head -n 1)
[[ -n $pg_dir ]] && ok "up says where the database lives ($pg_dir)" ||
	fail "up says where the database lives" "$(grep -i postgres <<<"$out")"
[[ -n $pg_dir && -f $pg_dir/data/PG_VERSION && $(stat -c %U "$pg_dir/data") == postgres ]] &&
	ok "the cluster is there, owned by postgres" || fail "the cluster is there, owned by postgres" "$(ls -la "$pg_dir" 2>&1)"
body=$(curl -sS --max-time 5 "http://127.0.0.1:$LAB_APP_PORT/health" 2>&1 || true)
[[ $body == *'"status":"ok"'* && $body == *'"products":200'* ]] && ok "/health: the seeded database answers" ||
	fail "/health: the seeded database answers" "$body"
out=$("$lab" status 2>&1) && ok "status" || fail "status" "$out"
out=$("$lab" down --purge 2>&1) && ok "down --purge" || fail "down --purge" "$out"
[[ -n $pg_dir && ! -e $pg_dir ]] && ok "down --purge deleted $pg_dir" || fail "down --purge deleted the cluster" "$out"
finish
