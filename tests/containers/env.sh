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
# apt_mirror and install_missing, shared with tests/vm/run.sh.
# shellcheck source=tests/apt.sh
source "$repo/tests/apt.sh"
export BUILDAH_FORMAT=docker
