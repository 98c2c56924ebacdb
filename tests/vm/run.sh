#!/usr/bin/env bash
# run.sh: `make test-vm`: the lab's CPU quota (SERVER_CPUS) on a real cgroup v2 machine, in a
# Debian 12 guest under qemu (KVM; TCG, much slower, when /dev/kvm is not usable).
# Usage: tests/vm/run.sh [SECTION...]   (default: every section, in this order)
#   sudo      as learner (uid 1000, passwordless sudo, a logind session over ssh): make up on a
#             guest where one of the lab's packages (prometheus-process-exporter) is missing:
#             the lab says it installs it with sudo apt-get, and does (from Debian's mirror,
#             the guest's only way out)
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
# package `make up` installs but one, prometheus-process-exporter) and cached in var/vm/ (git-ignored), with its kernel,
# initrd and the ssh key; each run boots it with -snapshot, so every run starts from the same
# disk.  The guest's network is qemu's user network with restrict=on: its only ways out are
# ssh from this machine (a loopback port forwarded to the guest's 22) and the mirror (the
# guest's deb.debian.org is 10.0.2.100, relayed by tests/vm/mirror-relay.py).  The checkout
# under test goes in as files (git ls-files, tar over ssh) and is built in the guest.  Every
# wait and every command has a time limit; the VM is stopped on every exit path.
# The guest disk's recipe is in image.sh, the checks and sections in checks.sh, both sourced.
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
# The guest disk's recipe: a change to build_image() (image.sh) that changes the disk bumps it.
image_version=2
# The lab's package the guest disk leaves out, for make up to install (the sudo section).
left_out=prometheus-process-exporter
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

# shellcheck source=tests/vm/image.sh
source "$repo/tests/vm/image.sh"

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
	# setpriv --pdeathsig: qemu gets TERM from the kernel if this script dies where no trap runs.
	setpriv --pdeathsig TERM qemu-system-x86_64 "${accel[@]}" -smp 2 -m 3072 -nodefaults -display none -no-reboot \
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

# shellcheck source=tests/vm/checks.sh
source "$repo/tests/vm/checks.sh"

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
