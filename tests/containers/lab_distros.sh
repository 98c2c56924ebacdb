# lab_distros.sh: the section lab-distros of tests/containers/run.sh, which sources this file
# after its setup and helpers (never run on its own); the functions read run.sh's settings
# ($repo, $cache, $work, $netns, ...).
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck shell=bash disable=SC2015,SC2154

# --- lab-distros -----------------------------------------------------------------------------
# The lab as a learner runs it in a plain Debian container (what a Codespace gives): a normal
# user with passwordless sudo, a read-only cgroup fs, the checkout as files of their own; then
# make up (which installs the packages with sudo apt-get from the mirror), SERVER_CPUS=0.5
# make scale SERVERS=2 (the lab must say it pins) and make down.  Debian 13 first (PostgreSQL 17, newer nginx and Prometheus), then
# Debian 12.  The container's network is slirp4netns: it reaches the mirror and npm, binds
# nothing on this machine and shares no bridge with other podman stores; the lab's ports are
# its own, checked from inside with podman exec.

# distro_base SUITE TAG: TAG made from SUITE (debootstrap minbase plus sudo, make, curl) with
# the user learner (uid 1000, passwordless sudo), unless the cache has it.
distro_base() {
	local suite=$1 tag=$2 dir=$cache/rootfs-lab-$1
	podman image exists "$tag" && return 0
	say "lab-distros: debootstrap $suite from $mirror (once; cached in var/containers)"
	rm -rf "$dir"
	timeout 900 debootstrap --variant=minbase --include=sudo,make,ca-certificates,curl "$suite" "$dir" \
		"$mirror" >"$cache/debootstrap-lab-$suite.log" 2>&1 ||
		die "debootstrap $suite failed: see $cache/debootstrap-lab-$suite.log"
	distro_user "$dir"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	tar -C "$dir" -c . | podman import -q --change 'CMD ["sleep", "infinity"]' --change 'USER learner' \
		--change 'WORKDIR /home/learner' - "$tag" >/dev/null
	rm -rf "$dir"
}

# distro_user ROOTFS: the user learner with passwordless sudo, as a Codespace's user has.
distro_user() {
	chroot "$1" useradd -m -u 1000 -s /bin/bash learner
	printf 'learner ALL=(ALL) NOPASSWD:ALL\n' >"$1/etc/sudoers.d/learner"
	chmod 440 "$1/etc/sudoers.d/learner"
}

# in_distro NAME SECONDS CMD...: CMD as learner in the checkout inside container NAME.
in_distro() {
	local c=$1 limit=$2
	shift 2
	timeout "$limit" podman exec -u learner -w /home/learner/catalog "$c" "$@"
}

section_lab_distros() {
	local suite
	for suite in trixie bookworm; do
		lab_distro "$suite"
	done
}

lab_distro() {
	local suite=$1 tag=localhost/lab-distro-$1:base c=lab-distro-$1-$$ name="lab in $1" out
	distro_base "$suite" "$tag"
	say "lab-distros: make up in a $suite container as a user with sudo"
	podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
	distro_containers+=("$c")
	podman run -d --name "$c" --network slirp4netns --no-healthcheck "$tag" >/dev/null ||
		{
			fail "$name: the container starts"
			return 0
		}
	podman exec -u 0 "$c" mkdir -p /home/learner/catalog
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - |
		podman exec -i -u 0 "$c" tar -C /home/learner/catalog -xf -
	podman exec -u 0 "$c" chown -R learner:learner /home/learner/catalog
	# Even root in the container cannot make a group: the cgroup fs (v2, or v1's cpu) is read-only.
	# shellcheck disable=SC2016 # expanded in the container
	out=$(in_distro "$c" 60 bash -c '. /etc/os-release; echo "$VERSION_CODENAME"; id -un; sudo -n true && echo sudo
		for d in /sys/fs/cgroup /sys/fs/cgroup/cpu; do [[ -e $d/cgroup.procs ]] && sudo -n mkdir "$d/lab-distro-probe" 2>/dev/null && sudo -n rmdir "$d/lab-distro-probe" && echo "writable $d"; done; echo ro-cgroup' 2>&1) || true
	[[ $out == *"$suite"*learner*sudo*ro-cgroup* && $out != *writable* ]] &&
		ok "$name: Debian $suite, user learner with passwordless sudo, no writable cgroup" ||
		fail "$name: the container's user and cgroups" "$out"
	if in_distro "$c" 1800 make up >"$work/$c-up.log" 2>&1; then
		ok "$name: make up (packages installed with sudo apt-get, built, started)"
	else
		fail "$name: make up" "$(tail -n 25 "$work/$c-up.log")"
		lab_distro_rm "$c"
		return 0
	fi
	out=$(in_distro "$c" 30 curl -fsS --max-time 10 localhost:3000/health 2>&1) || true
	[[ $out == *'"status":"ok"'* ]] && ok "$name: /health on 3000 inside the container: $out" ||
		fail "$name: /health on 3000" "$out"
	out=$(in_distro "$c" 30 bash -c 'psql --version; nginx -v 2>&1; prometheus --version 2>&1 | head -n1' 2>&1) || true
	echo "     $suite: ${out//$'\n'/; }"
	# A CPU size asks for a quota; with no writable cgroup the lab must say it pins instead.
	if in_distro "$c" 600 env SERVER_CPUS=0.5 make scale SERVERS=2 >"$work/$c-scale.log" 2>&1; then
		grep -q 'no CPU quota can be set on this machine' "$work/$c-scale.log" &&
			ok "$name: SERVER_CPUS=0.5 make scale SERVERS=2 says it pins each server instead of a quota" ||
			fail "$name: make scale says it pins instead of a CPU quota" "$(grep -i -m3 'cpu\|cgroup' "$work/$c-scale.log")"
		out=$(in_distro "$c" 60 bash -c 'for i in 1 2 3 4; do curl -fsS --max-time 10 localhost:8080/health; echo; done' 2>&1) || true
		python3 -c '
import json, sys
servers = [json.loads(l)["server"] for l in sys.argv[1].splitlines() if l.startswith("{")]
sys.exit(0 if len(servers) == 4 and all(servers[i] != servers[i + 1] for i in range(3)) and set(servers) == {"app", "app2"} else servers)' "$out" &&
			ok "$name: make scale SERVERS=2: /health through nginx on 8080 alternates app and app2" ||
			fail "$name: make scale SERVERS=2: app and app2 alternate behind 8080" "$out"
	else
		fail "$name: SERVER_CPUS=0.5 make scale SERVERS=2" "$(tail -n 15 "$work/$c-scale.log")"
	fi
	if in_distro "$c" 300 make down >"$work/$c-down.log" 2>&1; then
		out=$(in_distro "$c" 30 bash -c 'curl -fsS --max-time 3 localhost:3000/health || curl -fsS --max-time 3 localhost:8080/health || echo stopped' 2>&1) || true
		[[ $out == *stopped* ]] && ok "$name: make down, nothing answers on 3000 or 8080 after it" ||
			fail "$name: make down left something answering" "$out"
	else
		fail "$name: make down" "$(tail -n 10 "$work/$c-down.log")"
	fi
	lab_distro_rm "$c"
}

lab_distro_rm() { podman rm -f -t 5 "$1" >/dev/null 2>&1 || true; }
