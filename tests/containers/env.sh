# env.sh: sourced by tests/containers/*.sh.  Points podman at the project's own settings
# (never /etc), its storage at the git-ignored cache var/containers/, and gives the helpers
# every container test uses.  Needs $repo (the repository root).
# shellcheck shell=bash

cache=${CATALOG_CONTAINERS_CACHE:-$repo/var/containers}
mkdir -p "$cache/storage" "$cache/networks" "$cache/run"
# The cache path is absolute and per checkout, so the two files naming it are written here.
{
	cat "$repo/tests/containers/containers.conf"
	printf '\n[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "%s/networks"\n' "$cache"
} >"$cache/containers.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run/storage"\n' \
	"$cache" "$cache" >"$cache/storage.conf"
export CONTAINERS_CONF=$cache/containers.conf
export CONTAINERS_STORAGE_CONF=$cache/storage.conf
export CONTAINERS_REGISTRIES_CONF=$repo/tests/containers/registries.conf
# podman's own temporary files (image layers while building) next to its storage.
export TMPDIR=$cache/run
# The Debian mirror this machine's apt uses: debootstrap and the stand-ins' apt-get read it.
apt_mirror() {
	local m
	# shellcheck disable=SC2016 # $(REPO_URI) is apt's field, not the shell's
	m=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
		grep -v -- '-security' | grep -m1 '/debian/$' || true)
	printf '%s\n' "${m:-http://deb.debian.org/debian/}"
}
export BUILDAH_FORMAT=docker
