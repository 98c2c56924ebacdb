# image.sh: the guest disk of tests/vm/run.sh (build_image: debootstrap, once, cached in
# var/vm), sourced by run.sh (never run on its own); the functions read run.sh's settings
# ($repo, $cache, $work, $suite, $mirror, ...).
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck shell=bash disable=SC2015,SC2154

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
	# $left_out stays out, so `make up` has one package to install (the sudo section); its
	# .deb stays at hand for a guest that cannot reach the mirror.
	cp "$rootfs"/var/cache/apt/archives/"$left_out"_*.deb "$rootfs/root/" 2>/dev/null ||
		chroot_run 300 bash -c "cd /root && apt-get download $left_out" >>"$log" 2>&1
	chroot_run 120 apt-get purge -y -qq "$left_out" >>"$log" 2>&1
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
