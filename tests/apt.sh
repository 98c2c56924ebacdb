# apt.sh: sourced by tests/containers/env.sh and tests/vm/run.sh: the host's packages and
# Debian mirror, read the same way by both.  The caller defines say MESSAGE and die MESSAGE.
# shellcheck shell=bash

# install_missing PKG...: installs those of PKG that dpkg does not have (apt-get update once,
# then apt-get install), as root; as another user, stops with the one line to run.
install_missing() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[[ $(id -u) == 0 ]] || die "missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -qq || die "apt-get update failed: is the Debian mirror reachable?"
	timeout 1200 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

# apt_mirror: the Debian mirror this machine's apt uses (debootstrap and the images' apt-get
# read it).
apt_mirror() {
	local m
	# shellcheck disable=SC2016 # $(REPO_URI) is apt's field, not the shell's
	m=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
		grep -v -- '-security' | grep -m1 '/debian/$' || true)
	printf '%s\n' "${m:-http://deb.debian.org/debian/}"
}
