#!/usr/bin/env bash
# healthcheck.sh: the image's HEALTHCHECK; exits 0 when GET PATH on the local server answers 200.
# Usage: catalog-healthcheck [PATH]   (default /health/live; port from $PORT, default 3000)
# Plain bash (/dev/tcp) so the runtime image needs no HTTP client.
set -euo pipefail

path=${1:-/health/live}
port=${PORT:-3000}
host=${HEALTHCHECK_HOST:-127.0.0.1}

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
	echo "healthcheck: cannot connect to $host:$port" >&2
	exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status_line=""
IFS= read -r -t 3 status_line <&3 || true
exec 3<&-
status_line=${status_line%$'\r'}
if [[ $status_line =~ ^HTTP/1\.[01]\ 200 ]]; then
	exit 0
fi
echo "healthcheck: GET $path answered '${status_line:-nothing}'" >&2
exit 1
