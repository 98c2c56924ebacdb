#!/usr/bin/env bash
# run.sh: `make test-vm`: the lab's CPU quota (SERVER_CPUS) on a real cgroup v2 machine, in a
# Debian 12 guest under qemu (KVM; TCG, much slower, when /dev/kvm is not usable).
# Usage: tests/vm/run.sh [SECTION...]   (default: every section, in this order)
#   sudo      as learner (uid 1000, passwordless sudo, a logind session over ssh): make up on a
#             guest where the lab's package wrk is missing: the lab says it installs it with
#             sudo apt-get, and does (from Debian's mirror, the guest's only way out)
#   scope     as learner, whose systemd user manager (lingering) has the cpu controller
#             delegated: SERVER_CPUS=0.25 make scale SERVERS=2 runs each server in a
#             systemd-run --user scope with CPUQuota=25%: make status names it, the scope's
#             cpu.max reads "25000 100000", /health alternates app/app2 on 8080, and under
#             load each server uses at most about 0.25 CPU s per second; make down
#   root      the same as root: the lab's own groups under /sys/fs/cgroup/catalog (cpu.max)
#   pinning   as plain (uid 1001, no sudo) entered with runuser: no systemd session, so no
#             delegated controller: the lab says no quota can be set and pins each server
# Prints "vm: N passed, N failed"; exits non-zero on any failure.
#
# Installs what it needs (qemu-system-x86, qemu-utils, debootstrap, e2fsprogs, openssh-client)
# with apt-get when run as root.  The guest disk is built once with debootstrap from this
# machine's apt mirror (systemd as PID 1, the unified cgroup hierarchy, sshd, sudo, and every
# package `make up` installs except wrk) and cached in var/vm/ (git-ignored), with its kernel,
# initrd and the ssh key; each run boots it with -snapshot, so every run starts from the same
# disk.  The guest's network is qemu's user network with restrict=on: its only ways out are
# ssh from this machine (a loopback port forwarded to the guest's 22) and the mirror (the
# guest's deb.debian.org is 10.0.2.100, relayed by tests/vm/mirror-relay.py).  The checkout
# under test goes in as files (git ls-files, tar over ssh) and is built in the guest.  Every
# wait and every command has a time limit; the VM is stopped on every exit path.
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=tests/integration/common/report.sh
source "$repo/tests/integration/common/report.sh"
# shellcheck source=tests/apt.sh
source "$repo/tests/apt.sh"
report_start vm

sections=("$@")
((${#sections[@]})) || sections=(sudo scope root pinning)
started=$SECONDS
cache=${CATALOG_VM_CACHE:-$repo/var/vm}
# The guest disk's recipe: a change to build_image() that changes the disk bumps it.
image_version=1
suite=bookworm
qemu_pid="" ssh_port="" mounted=() slow=1
guest_env="SEED_ORDERS=20000 npm_config_offline=true" # for every lab command in the guest
mkdir -p "$cache/run"
work=$(mktemp -d "$cache/run/work.XXXXXX")
# qemu's -snapshot overlay goes to TMPDIR: keep it in the cache, not /tmp.
export TMPDIR=$cache/run

say() { printf '== %s (%ds)\n' "$*" $((SECONDS - started)); }
die() {
	echo "test-vm: $*" >&2
	exit 1
}

cleanup() {
	set +e
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		# A clean shutdown first (the disk is a throwaway snapshot either way), then SIGKILL.
		guest root 20 systemctl poweroff >/dev/null 2>&1
		local i
		for ((i = 0; i < 20; i++)); do
			kill -0 "$qemu_pid" 2>/dev/null || break
			sleep 1
		done
		kill "$qemu_pid" 2>/dev/null
		sleep 1
		kill -9 "$qemu_pid" 2>/dev/null
	fi
	local m
	for ((m = ${#mounted[@]} - 1; m >= 0; m--)); do umount -l "${mounted[m]}" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- setup: packages, mirror ---------------------------------------------------------------
need_pkgs=(qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client python3 curl git)
install_missing "${need_pkgs[@]}"
[[ $(id -u) == 0 ]] || die "building the guest disk needs root (debootstrap, chroot): run as root"

mirror=$(apt_mirror)
[[ $mirror =~ ^http://([^/:]+)(:([0-9]+))?/ ]] || die "the mirror $mirror is not plain http://HOST[:PORT]/...: the guest's relay needs one"
mirror_host=${BASH_REMATCH[1]} mirror_port=${BASH_REMATCH[3]:-80}

# --- the guest disk --------------------------------------------------------------------------
# chroot_run SECONDS CMD...: CMD in the rootfs being built, for at most SECONDS, with apt quiet
# and no service started.
chroot_run() {
	local limit=$1
	shift
	# TMPDIR is this script's (a folder of the host's): inside the chroot it does not exist, and
	# a package's set-up that calls mktemp (ssl-cert's, under postgresql) would fail.
	TMPDIR=/tmp LC_ALL=C DEBIAN_FRONTEND=noninteractive CATALOG_KEEP_SYSTEM_SERVICES=1 timeout "$limit" chroot "$rootfs" "$@"
}

mount_into() {
	mount "$@"
	mounted+=("${*: -1}")
}

# build_image: $cache/disk.raw (ext4, the whole disk), vmlinuz and initrd.img, unless the cache
# has this version of them.
build_image() {
	[[ -f $cache/disk.raw && $(cat "$cache/image.version" 2>/dev/null) == "$image_version" ]] && return 0
	rootfs=$cache/rootfs
	local log=$cache/build.log
	say "building the guest disk: debootstrap $suite from $mirror (once; cached in var/vm, log var/vm/build.log)"
	rm -f "$cache/disk.raw" "$cache/image.version"
	# A debootstrap that completed is kept until the disk is made (a run stopped after it
	# resumes there; apt-get install below is idempotent).
	if [[ ! -f $rootfs/debootstrap.done ]]; then
		rm -rf "$rootfs"
		: >"$log"
		timeout 1200 debootstrap --variant=minbase \
			--include=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,udev,kmod,sudo,openssh-server,iproute2,procps,ca-certificates,curl,make,git,less \
			"$suite" "$rootfs" "$mirror" >>"$log" 2>&1 || die "debootstrap $suite failed: see $log"
		: >"$rootfs/debootstrap.done"
	fi
	mount_into -t proc proc "$rootfs/proc"
	mount_into -t sysfs sys "$rootfs/sys"
	mount_into --bind /dev "$rootfs/dev"
	mount_into --bind /dev/pts "$rootfs/dev/pts"
	printf 'deb %s %s main\n' "$mirror" "$suite" >"$rootfs/etc/apt/sources.list"
	cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
	# The kernel boots with this initrd from a virtio disk holding ext4.
	mkdir -p "$rootfs/etc/initramfs-tools" "$rootfs/etc/postgresql-common"
	grep -qx virtio_blk "$rootfs/etc/initramfs-tools/modules" 2>/dev/null ||
		printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >>"$rootfs/etc/initramfs-tools/modules"
	# The lab runs its own clusters; no system cluster (as install-deps leaves none running).
	printf 'create_main_cluster = false\n' >"$rootfs/etc/postgresql-common/createcluster.conf"
	printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
	chmod 755 "$rootfs/usr/sbin/policy-rc.d"
	say "guest disk: linux-image-amd64 and the lab's packages (scripts/install-deps.sh all)"
	chroot_run 600 apt-get update -qq >>"$log" 2>&1 || die "apt-get update in the guest disk failed: see $log"
	chroot_run 900 apt-get install -y -qq --no-install-recommends linux-image-amd64 initramfs-tools >>"$log" 2>&1 ||
		die "installing the kernel into the guest disk failed: see $log"
	cp scripts/install-deps.sh "$rootfs/tmp/install-deps.sh"
	chroot_run 2400 bash /tmp/install-deps.sh all >>"$log" 2>&1 ||
		die "scripts/install-deps.sh all in the guest disk failed: see $log"
	# wrk stays out, so `make up` has one package to install (the sudo section); its .deb
	# stays at hand for a guest that cannot reach the mirror.
	cp "$rootfs"/var/cache/apt/archives/wrk_*.deb "$rootfs/root/" 2>/dev/null ||
		chroot_run 300 bash -c 'cd /root && apt-get download wrk' >>"$log" 2>&1
	chroot_run 120 apt-get purge -y -qq wrk >>"$log" 2>&1
	rm -f "$rootfs/usr/sbin/policy-rc.d" "$rootfs/tmp/install-deps.sh"

	# The machine: name, disk, network (DHCP from qemu), the mirror's stand-in address, sshd.
	echo catalog-vm >"$rootfs/etc/hostname"
	printf '127.0.0.1 localhost\n127.0.1.1 catalog-vm\n10.0.2.100 %s\n' "$mirror_host" >"$rootfs/etc/hosts"
	: >"$rootfs/etc/resolv.conf"
	printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$rootfs/etc/fstab"
	printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$rootfs/etc/systemd/network/10-guest.network"
	printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' >"$rootfs/etc/ssh/sshd_config.d/catalog-vm.conf"
	chroot_run 120 systemctl enable systemd-networkd ssh >>"$log" 2>&1
	# Nothing but the lab's own instances: the packages' system services stay off, and so do
	# the timers that would start apt or man-db in the middle of a test.
	chroot_run 120 systemctl mask nginx prometheus postgresql pgbouncer prometheus-node-exporter \
		prometheus-postgres-exporter prometheus-process-exporter apt-daily.timer apt-daily-upgrade.timer \
		man-db.timer e2scrub_all.timer fstrim.timer systemd-networkd-wait-online >>"$log" 2>&1

	# The accounts: learner (uid 1000) with passwordless sudo and a lingering user manager,
	# plain (uid 1001) without sudo; root, learner and plain take this machine's key.
	[[ -f $cache/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C catalog-vm -f "$cache/id_ed25519"
	chroot_run 120 bash -c 'id -u learner >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash learner'
	chroot_run 120 bash -c 'id -u plain >/dev/null 2>&1 || useradd -m -u 1001 -s /bin/bash plain'
	printf 'learner ALL=(ALL) NOPASSWD:ALL\n' >"$rootfs/etc/sudoers.d/learner"
	chmod 440 "$rootfs/etc/sudoers.d/learner"
	mkdir -p "$rootfs/var/lib/systemd/linger"
	: >"$rootfs/var/lib/systemd/linger/learner"
	local home
	for home in root home/learner home/plain; do
		install -d -m 700 "$rootfs/$home/.ssh"
		install -m 600 "$cache/id_ed25519.pub" "$rootfs/$home/.ssh/authorized_keys"
	done
	chroot_run 120 chown -R learner:learner /home/learner/.ssh
	chroot_run 120 chown -R plain:plain /home/plain/.ssh

	cp -L "$rootfs/vmlinuz" "$cache/vmlinuz"
	cp -L "$rootfs/initrd.img" "$cache/initrd.img"
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs/debootstrap.done"
	local m
	for ((m = ${#mounted[@]} - 1; m >= 0; m--)); do umount -l "${mounted[m]}"; done
	mounted=()
	say "guest disk: mkfs.ext4 -d ($(du -sh "$rootfs" | cut -f1) of files)"
	timeout 900 mkfs.ext4 -q -F -L catalog-vm -d "$rootfs" "$cache/disk.raw.new" 12G >>"$log" 2>&1 ||
		die "mkfs.ext4 -d failed: see $log"
	mv "$cache/disk.raw.new" "$cache/disk.raw"
	rm -rf "$rootfs"
	echo "$image_version" >"$cache/image.version"
}

# --- the guest -------------------------------------------------------------------------------
ssh_opts=(-i "$cache/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4)

# guest USER SECONDS CMD...: CMD (one shell line) as USER in the guest, for at most SECONDS
# (times the TCG factor).
guest() {
	local user=$1 limit=$(($2 * slow))
	shift 2
	timeout "$limit" ssh "${ssh_opts[@]}" -p "$ssh_port" "$user@127.0.0.1" "$@"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# kvm_usable: 0 when qemu can run Debian's kernel under KVM here; else says why and returns 1.
kvm_usable() {
	if ! [[ -r /dev/kvm && -w /dev/kvm ]] || ! { exec 3<>/dev/kvm; } 2>/dev/null; then
		say "no usable /dev/kvm here"
		return 1
	fi
	exec 3>&-
	# A /dev/kvm backed only by PVM (nested virtualization without VMX/SVM, as in some cloud
	# sandboxes) runs only kernels built as PVM guests: Debian's stops right after its
	# real-mode setup.
	if [[ -d /sys/module/kvm_pvm && ! -d /sys/module/kvm_intel && ! -d /sys/module/kvm_amd ]]; then
		say "/dev/kvm here is PVM (kvm_pvm: nested, without VMX/SVM), which boots only PVM guest kernels, not Debian's"
		return 1
	fi
}

boot() {
	local accel=(-accel kvm -cpu host)
	if ! kvm_usable; then
		say "booting under TCG instead (qemu's emulation: several times slower; every time limit x4)"
		accel=(-accel "tcg,thread=multi" -cpu max)
		slow=4
		guest_env+=" DB_CONNECT_TIMEOUT_MS=15000"
	fi
	ssh_port=$(free_port)
	say "booting the guest (${accel[1]%%,*}, 2 CPUs, 3 GiB; ssh on 127.0.0.1:$ssh_port; console: $work/console.log)"
	qemu-system-x86_64 "${accel[@]}" -smp 2 -m 3072 -nodefaults -display none -no-reboot \
		-kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 panic=-1" \
		-drive "file=$cache/disk.raw,format=raw,if=virtio,cache=unsafe" -snapshot \
		-netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$ssh_port-:22,guestfwd=tcp:10.0.2.100:80-cmd:python3 $repo/tests/vm/mirror-relay.py $mirror_host $mirror_port" \
		-device virtio-net-pci,netdev=net0,romfile= \
		-serial "file:$work/console.log" -pidfile "$work/qemu.pid" >"$work/qemu.log" 2>&1 &
	qemu_pid=$!
	local end=$((SECONDS + 180 * slow))
	until guest root 20 systemctl is-system-running --wait >"$work/running" 2>/dev/null || [[ -s $work/running ]]; do
		if ! kill -0 "$qemu_pid" 2>/dev/null; then
			tail -n 20 "$work/qemu.log" "$work/console.log"
			die "qemu stopped before the guest answered on ssh"
		fi
		if ((SECONDS >= end)); then
			tail -n 30 "$work/console.log"
			die "the guest did not answer on ssh within $((180 * slow)) s"
		fi
		sleep 2
	done
	say "guest up: systemd $(<"$work/running")"
}

# --- checks ----------------------------------------------------------------------------------
# check NAME CMD...: ok when CMD succeeds, else fail with its output.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(tail -n 15 <<<"$out")"; fi
}

# put_checkout USER DIR: the checkout under test (tracked and new files, as a clone has them)
# with its build/ (made on this machine, also Debian 12: the guest's make finds it up to date),
# or the guest's first copy of it when there is one, in DIR, owned by USER.
put_checkout() {
	local user=$1 dir=$2
	if guest root 30 test -x /home/learner/catalog/build/catalog-server && [[ $dir != /home/learner/catalog ]]; then
		guest root 120 "rm -rf $dir && mkdir -p $dir && cd /home/learner/catalog && tar --exclude=./var -cf - . | tar -C $dir -xf - && chown -R $user: $dir"
	else
		{
			git ls-files -z --cached --others --exclude-standard
			find build -type f -print0
		} | tar --null -T - -cf - |
			guest root 300 "rm -rf $dir && mkdir -p $dir && tar -C $dir -xf - && chown -R $user: $dir"
	fi
}

# as USER SECONDS CMD: CMD in USER's checkout; learner and root over ssh (a logind session),
# plain through runuser from root's (no session, no user manager).  The seed is 20,000
# orders, not 500,000: nothing here reads the report, and under TCG the full seed takes minutes.
# npm is offline (the guest reaches no npm registry): the dashboard's build fails at once
# instead of after npm's retries, and make up says so and goes on.  Under TCG a server's
# first connection (SCRAM, a backend's start) can take longer than DB_CONNECT_TIMEOUT_MS's
# 3 s on a quarter of an emulated CPU: boot() raises it there.
as() {
	local user=$1 limit=$2 seed=$guest_env
	shift 2
	case $user in
	learner) guest learner "$limit" "cd ~/catalog && export $seed && $*" ;;
	root) guest root "$limit" "cd /srv/catalog && export $seed && $*" ;;
	plain) guest root "$limit" "cd /home/plain/catalog && runuser -u plain -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/plain USER=plain LOGNAME=plain $seed bash -c $(printf %q "$*")" ;;
	esac
}

# make_up USER NAME: make up as USER.
make_up() {
	local user=$1 name=$2
	if as "$user" 900 make up >"$work/$user-up.log" 2>&1; then
		ok "$name: make up"
	else
		fail "$name: make up" "$(tail -n 25 "$work/$user-up.log")"
		return 1
	fi
}

# server_pids USER: "ID PID" per running server, from make status.
server_pids() {
	as "$1" 60 make status 2>/dev/null | sed -n 's/^server \([a-z0-9]*\) *pid \([0-9]*\) .*/\1 \2/p'
}

# alternates USER NAME: /health four times through nginx on 8080 in the guest: app, app2, ...
alternates() {
	local out
	out=$(as "$1" 60 'for i in 1 2 3 4; do curl -fsS --max-time 10 localhost:8080/health; echo; done' 2>&1) || true
	python3 -c '
import json, sys
servers = [json.loads(l)["server"] for l in sys.argv[1].splitlines() if l.startswith("{")]
sys.exit(0 if len(servers) == 4 and all(servers[i] != servers[i + 1] for i in range(3)) and set(servers) == {"app", "app2"} else servers)' "$out" &&
		ok "$2: /health through nginx on 8080 alternates app and app2" ||
		fail "$2: /health through nginx on 8080 alternates app and app2" "$out"
}

# quota_holds USER NAME PIDS...: 12 s of load through nginx on 8080 (the cheapest route, so the
# servers, not PostgreSQL, are what is busy); each server's CPU seconds (utime + stime from
# /proc/PID/stat) over the 8 s in the middle, per wall second: at most 0.40 with a quota of
# 0.25 (without one a server takes a whole core), and more than 0.05 (it was busy).
quota_holds() {
	local user=$1 name=$2 out
	shift 2
	# shellcheck disable=SC2016 # expanded in the guest
	out=$(as "$user" 120 'pids="'"$*"'"
cpu() { local p t=0; for p in $pids; do t="$t $(awk "{print \$14 + \$15}" /proc/$p/stat)"; done; echo "$t"; }
timeout 60 build/catalog-loadtest -c 32 -t 1 -d 12s --path /health/live http://127.0.0.1:8080/ >/tmp/load.$$ 2>&1 &
sleep 2; a=$(cpu); t0=$(date +%s.%N); sleep 8; b=$(cpu); t1=$(date +%s.%N); wait
echo "$a|$b|$t0|$t1|$(getconf CLK_TCK)|$(grep -m1 -i "requests" /tmp/load.$$)"; rm -f /tmp/load.$$' 2>&1) || true
	python3 -c '
import sys
a, b, t0, t1, hz, load = sys.argv[1].strip().splitlines()[-1].split("|")
wall = float(t1) - float(t0)
rates = [(float(y) - float(x)) / float(hz) / wall for x, y in zip(a.split()[1:], b.split()[1:])]
print(" ".join("%.2f" % r for r in rates), "CPU s per s;", load.strip())
sys.exit(0 if len(rates) == int(sys.argv[2]) and all(0.05 < r <= 0.40 for r in rates) else 1)' "$out" "$#" >"$work/quota" 2>&1 &&
		ok "$name: under 12 s of load through 8080 each server stays near its quota of 0.25 CPU: $(<"$work/quota")" ||
		fail "$name: under load each server uses 0.05 to 0.40 CPU s per s (quota 0.25)" "$(<"$work/quota")" "$out"
}

# scale_quota USER NAME MECHANISM: SERVER_CPUS=0.25 make scale SERVERS=2, make status, cpu.max
# of each server's own cgroup, alternation, the load check, make down.  MECHANISM: the lab's
# name for it in make scale's and make status's lines (systemd, cgroup v2).
scale_quota() {
	local user=$1 name=$2 mech=$3 short
	short=${mech/ /-}
	if ! as "$user" 600 SERVER_CPUS=0.25 make scale SERVERS=2 >"$work/$user-scale.log" 2>&1; then
		fail "$name: SERVER_CPUS=0.25 make scale SERVERS=2" "$(tail -n 20 "$work/$user-scale.log")"
		as "$user" 300 make down >/dev/null 2>&1 || true
		return 0
	fi
	grep -q "0.25 CPUs ($mech)" "$work/$user-scale.log" && ! grep -q 'no CPU quota' "$work/$user-scale.log" &&
		ok "$name: SERVER_CPUS=0.25 make scale SERVERS=2 starts each server with a quota ($mech)" ||
		fail "$name: make scale says each server got a quota through $mech" "$(grep -i 'cpu\|cgroup\|started' "$work/$user-scale.log")"
	as "$user" 60 make status >"$work/$user-status.log" 2>&1 || true
	[[ $(grep -c "limit $short " "$work/$user-status.log") == 2 ]] && grep -q "^cpu limit *app2: " "$work/$user-status.log" &&
		ok "$name: make status shows $short for both servers: $(grep -m1 '^cpu limit' "$work/$user-status.log" | tr -s ' ')" ||
		fail "$name: make status shows the mechanism ($short) of each server" "$(cat "$work/$user-status.log")"
	local pids=() servers=() id pid line
	# Read whole first: the ssh calls in the loop would read the rest of a piped list.
	mapfile -t servers < <(server_pids "$user")
	for line in "${servers[@]}"; do
		read -r id pid <<<"$line"
		pids+=("$pid")
		# shellcheck disable=SC2016 # expanded in the guest
		line=$(guest root 30 'g=$(sed -n "s/^0:://p" /proc/'"$pid"'/cgroup); echo "$g $(cat /sys/fs/cgroup$g/cpu.max)"' 2>&1) || true
		[[ $line == *" 25000 100000" ]] &&
			ok "$name: $id's own cgroup has cpu.max 25000 100000: $line" ||
			fail "$name: $id's cgroup cpu.max reads 25000 100000" "$line"
		case $mech in
		systemd) [[ $line == /user.slice/user-1000.slice/user@1000.service/*.scope\ * ]] ;;
		*) [[ $line == "/catalog/$id "* ]] ;;
		esac && ok "$name: $id runs in ${line%% *}" || fail "$name: $id runs in the expected group ($mech)" "$line"
	done
	((${#pids[@]} == 2)) || fail "$name: make status lists two servers" "$(cat "$work/$user-status.log")"
	alternates "$user" "$name"
	((${#pids[@]} == 2)) && quota_holds "$user" "$name" "${pids[@]}"
	if as "$user" 300 make down >"$work/$user-down.log" 2>&1; then
		local left
		left=$(as "$user" 30 'curl -fsS --max-time 3 localhost:8080/health || curl -fsS --max-time 3 localhost:3000/health || echo stopped' 2>&1) || true
		[[ $left == *stopped* ]] && ok "$name: make down, nothing answers on 3000 or 8080 after it" ||
			fail "$name: make down left something answering" "$left"
	else
		fail "$name: make down" "$(tail -n 10 "$work/$user-down.log")"
	fi
}

# --- sections --------------------------------------------------------------------------------
section_sudo() {
	local name="sudo (learner)" out
	put_checkout learner /home/learner/catalog
	# shellcheck disable=SC2016 # expanded in the guest
	out=$(guest learner 30 'id -un; sudo -n true && echo sudo; dpkg-query -W -f="\${Status}" wrk 2>/dev/null | grep -q "ok installed" || echo no-wrk' 2>&1) || true
	[[ $out == *learner*sudo*no-wrk* ]] && ok "$name: user learner with passwordless sudo; wrk (a lab package) is not installed" ||
		fail "$name: the account and the missing package" "$out"
	if ! guest learner 30 curl -fsS --max-time 20 -o /dev/null "${mirror%/}/dists/$suite/Release" 2>"$work/mirror.err"; then
		say "the guest cannot reach $mirror ($(<"$work/mirror.err")): the sudo apt-get path is left to make test-containers' lab-distros section; wrk from its .deb instead"
		guest root 120 'dpkg -i /root/wrk_*.deb' >/dev/null 2>&1 || fail "$name: dpkg -i wrk"
		make_up learner "$name"
		return 0
	fi
	make_up learner "$name" || return 0
	grep -q 'installing wrk with sudo apt-get' "$work/learner-up.log" &&
		ok "$name: make up says it installs the missing package with sudo apt-get: $(grep -m1 'with sudo apt-get' "$work/learner-up.log")" ||
		fail "$name: make up announces sudo apt-get install" "$(head -n 10 "$work/learner-up.log")"
	# shellcheck disable=SC2016 # expanded in the guest
	check "$name: wrk is installed afterwards (from Debian's mirror through the guest's relay)" \
		guest learner 30 'dpkg-query -W -f="\${Status} \${Version}\n" wrk | grep "ok installed"'
	out=$(guest learner 30 curl -fsS --max-time 10 localhost:3000/health 2>&1) || true
	[[ $out == *'"status":"ok"'* ]] && ok "$name: /health on 3000: $out" || fail "$name: /health on 3000" "$out"
}

section_scope() {
	local name="scope (learner)" out
	guest root 30 test -x /home/learner/catalog/build/catalog-server || {
		put_checkout learner /home/learner/catalog
		guest root 120 'dpkg -s wrk >/dev/null 2>&1 || dpkg -i /root/wrk_*.deb' >/dev/null 2>&1 || true
	}
	# What a user checks first: cgroup v2, a user manager, the cpu controller delegated to it.
	# shellcheck disable=SC2016 # expanded in the guest
	out=$(guest learner 30 'stat -fc %T /sys/fs/cgroup; echo "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"; systemctl --user is-system-running; cat /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers' 2>&1) || true
	[[ $out == cgroup2fs*XDG_RUNTIME_DIR=/run/user/1000*running*cpu* ]] &&
		ok "$name: cgroup v2, a logind session, the user manager running with the cpu controller delegated (${out//$'\n'/; })" ||
		fail "$name: cgroup v2 with a delegated cpu controller" "$out"
	make_up learner "$name" || return 0
	scale_quota learner "$name" systemd
}

section_root() {
	local name="root" out
	# Not in /root (0700, closed to the postgres user): a clone there is test_lab_root_home's.
	put_checkout root /srv/catalog
	make_up root "$name" || return 0
	scale_quota root "$name" "cgroup v2"
	out=$(guest root 30 'ls -d /sys/fs/cgroup/catalog/app /sys/fs/cgroup/catalog/app2 2>/dev/null || echo removed' 2>&1) || true
	[[ $out == removed ]] && ok "$name: make down removes the servers' groups" ||
		fail "$name: the servers' groups are removed after make down" "$out"
}

section_pinning() {
	local name="pinning (plain, no session)" out
	put_checkout plain /home/plain/catalog
	make_up plain "$name" || return 0
	if as plain 600 SERVER_CPUS=0.25 make scale SERVERS=2 >"$work/plain-scale.log" 2>&1; then
		out=$(grep -m1 'no CPU quota can be set' "$work/plain-scale.log" || true)
		[[ $out == *"no systemd user instance"* && $out == *pinning* ]] &&
			ok "$name: make scale says no quota can be set (no systemd user instance) and pins: ${out:0:160}..." ||
			fail "$name: make scale says it pins, and why" "$(grep -i 'cpu\|cgroup\|quota' "$work/plain-scale.log")"
		as plain 60 make status >"$work/plain-status.log" 2>&1 || true
		[[ $(grep -c 'limit pinned:' "$work/plain-status.log") == 2 ]] &&
			ok "$name: make status shows both servers pinned" ||
			fail "$name: make status shows pinning" "$(cat "$work/plain-status.log")"
		alternates plain "$name"
	else
		fail "$name: SERVER_CPUS=0.25 make scale SERVERS=2" "$(tail -n 15 "$work/plain-scale.log")"
	fi
	as plain 300 make down >"$work/plain-down.log" 2>&1 && ok "$name: make down" ||
		fail "$name: make down" "$(tail -n 10 "$work/plain-down.log")"
}

main() {
	local s
	for s in "${sections[@]}"; do
		case $s in sudo | scope | root | pinning) ;; *) die "unknown section '$s' (sudo, scope, root, pinning)" ;; esac
	done
	build_image
	# The unit tests' objects are named as goals too: as intermediates make would delete them,
	# and then their .d files (-MMD) make the guest's `make all` (make up's) build them again.
	say "make all on this machine (the guest gets the build with the checkout)"
	local objects
	objects=$(find tests/unit -name 'test_*.c' | sed 's|^tests/unit/\(.*\)\.c$|build/tests/unit/\1.o|')
	# shellcheck disable=SC2086 # one word per object
	timeout 1200 make --no-print-directory -s all $objects >"$work/make.log" 2>&1 &&
		timeout 600 make --no-print-directory -s all >>"$work/make.log" 2>&1 || {
		tail -n 20 "$work/make.log"
		die "make all failed"
	}
	boot
	for s in "${sections[@]}"; do
		say "$s"
		"section_$s"
	done
	say "done"
	finish
}
main
