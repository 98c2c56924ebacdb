#!/bin/sh
# nginx-entrypoint.sh: the nginx stand-in's entrypoint, with the one hook of the official
# image's that the layouts use: before nginx starts, each executable *.sh in
# /docker-entrypoint.d/ runs in name order (a *.envsh is sourced instead), and a file that is
# not executable is passed over with a line saying so.  A hook that fails stops the container,
# as there.  Commands other than nginx run as given.
set -eu
case ${1:-} in
nginx | nginx-debug)
	if [ -d /docker-entrypoint.d ]; then
		for hook in $(find /docker-entrypoint.d/ -follow -type f | sort); do
			case $hook in
			*.envsh)
				if [ -x "$hook" ]; then
					# shellcheck disable=SC1090
					. "$hook"
				else echo "$0: $hook is not executable: passed over"; fi
				;;
			*.sh)
				if [ -x "$hook" ]; then "$hook"; else echo "$0: $hook is not executable: passed over"; fi
				;;
			*) echo "$0: $hook is neither *.sh nor *.envsh: passed over" ;;
			esac
		done
	fi
	;;
esac
exec "$@"
