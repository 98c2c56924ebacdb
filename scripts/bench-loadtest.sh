#!/usr/bin/env bash
# bench-loadtest.sh: catalog-loadtest against wrk on the same fast local target (nginx serving a
# small static body on a free loopback port), same threads, connections and duration, run one
# after the other, alternating, ROUNDS times.  Prints requests/s, p50 and the CPU time each tool
# spent per request (user + system; steadier than requests/s on a shared machine), the medians
# and the ratios.  A benchmark, never part of `make test`.
# Usage: scripts/bench-loadtest.sh [BUILD_DIR]
#   env: THREADS (2) CONNECTIONS (100) DURATION (10, seconds) ROUNDS (3) NGINX_WORKERS (1)
#        NICE (0): run nginx and both load generators at this nice level (e.g. -10, as root) so
#        that other work on a shared machine disturbs the comparison less; same for both tools
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${THREADS:-2}
connections=${CONNECTIONS:-100}
duration=${DURATION:-10}
rounds=${ROUNDS:-3}
nginx_workers=${NGINX_WORKERS:-1}
nice_level=${NICE:-0}
loadtest=$build/catalog-loadtest
nginx=$(command -v nginx || echo /usr/sbin/nginx)

for tool in "$loadtest" "$nginx" "$(command -v wrk || true)" "$(command -v python3 || true)"; do
	if [[ -z $tool || ! -x $tool ]]; then
		echo "bench-loadtest: missing ${tool:-wrk or python3}; run make and scripts/install-deps.sh all" >&2
		exit 1
	fi
done

dir=$(mktemp -d /tmp/catalog-bench-loadtest.XXXXXX)
nginx_pid=
cleanup() {
	if [[ -n $nginx_pid ]]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/www" "$dir/tmp"
echo '{"id":1,"name":"Widget","price":"9.99"}' >"$dir/www/index.json"
user_line=
[[ $(id -u) -eq 0 ]] && user_line="user root;"
cat >"$dir/nginx.conf" <<CONF
$user_line
worker_processes $nginx_workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        location / { default_type application/json; try_files /index.json =404; }
    }
}
CONF
nice -n "$nice_level" "$nginx" -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
for _ in $(seq 50); do
	curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/" || { echo "bench-loadtest: nginx did not start:" >&2; cat "$dir/error.log" >&2; exit 1; }

url="http://127.0.0.1:$port/index.json"
echo "target: nginx $("$nginx" -v 2>&1 | sed 's/.*\///'), $nginx_workers worker(s), $url"
echo "load: $threads threads, $connections connections, $duration s per run, $rounds rounds, $(nproc) CPUs, nice $nice_level"
echo

# to_ms VALUE: wrk's "1.23ms" / "456.00us" / "1.01s" in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
		printf "%.3f", n }'
}

# timed FILE CMD...: runs CMD (stdout passes through) and writes its "user system" CPU seconds
# to FILE (python3 rather than /usr/bin/time, which is not always installed).
timed() {
	local file=$1
	shift
	python3 -c 'import resource, subprocess, sys
code = subprocess.call(["nice", "-n", sys.argv[2]] + sys.argv[3:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{usage.ru_utime} {usage.ru_stime}\n")
sys.exit(code)' "$file" "$nice_level" "$@"
}

# cpu_us_per_request TIME_FILE REQUESTS: user + system CPU microseconds per request.
cpu_us_per_request() {
	awk -v n="$2" '{printf "%.2f", ($1 + $2) * 1e6 / n}' "$1"
}

wrk_rps=() wrk_p50=() wrk_cpu=() ours_rps=() ours_p50=() ours_cpu=()
for round in $(seq "$rounds"); do
	out=$(timed "$dir/time" wrk -t "$threads" -c "$connections" -d "${duration}s" --latency "$url")
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	cpu=$(cpu_us_per_request "$dir/time" "$(awk '/requests in/ {print $1}' <<<"$out")")
	wrk_rps+=("$rps") wrk_p50+=("$p50") wrk_cpu+=("$cpu")
	printf 'round %d  wrk               %10.1f requests/s  p50 %7.3f ms  %6.2f us CPU/request\n' \
		"$round" "$rps" "$p50" "$cpu"

	timed "$dir/time" "$loadtest" -t "$threads" -c "$connections" -d "$duration" --json "$dir/ours.json" "$url" \
		>"$dir/ours.txt" 2>/dev/null
	rps=$(sed -n 's/^  "rps": \([0-9.]*\),$/\1/p' "$dir/ours.json")
	p50=$(sed -n 's/^  "latency_ms": {"avg": [0-9.]*, "p50": \([0-9.]*\),.*/\1/p' "$dir/ours.json")
	cpu=$(cpu_us_per_request "$dir/time" "$(sed -n 's/^  "requests": \([0-9]*\),$/\1/p' "$dir/ours.json")")
	ours_rps+=("$rps") ours_p50+=("$p50") ours_cpu+=("$cpu")
	printf 'round %d  catalog-loadtest  %10.1f requests/s  p50 %7.3f ms  %6.2f us CPU/request\n' \
		"$round" "$rps" "$p50" "$cpu"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
w_rps=$(median "${wrk_rps[@]}") w_p50=$(median "${wrk_p50[@]}") w_cpu=$(median "${wrk_cpu[@]}")
o_rps=$(median "${ours_rps[@]}") o_p50=$(median "${ours_p50[@]}") o_cpu=$(median "${ours_cpu[@]}")
echo
printf 'median   wrk               %10.1f requests/s  p50 %7.3f ms  %6.2f us CPU/request\n' \
	"$w_rps" "$w_p50" "$w_cpu"
printf 'median   catalog-loadtest  %10.1f requests/s  p50 %7.3f ms  %6.2f us CPU/request\n' \
	"$o_rps" "$o_p50" "$o_cpu"
# best RPS_LIST P50_LIST: the fastest run's "requests/s p50" (the one least disturbed by other
# work on a shared machine).
best() {
	local -n rps_list=$1 p50_list=$2
	local i top=0
	for i in "${!rps_list[@]}"; do
		awk -v a="${rps_list[$i]}" -v b="${rps_list[$top]}" 'BEGIN {exit !(a > b)}' && top=$i
	done
	echo "${rps_list[$top]} ${p50_list[$top]}"
}
read -r wb_rps wb_p50 <<<"$(best wrk_rps wrk_p50)"
read -r ob_rps ob_p50 <<<"$(best ours_rps ours_p50)"
printf 'best     wrk               %10.1f requests/s  p50 %7.3f ms\n' "$wb_rps" "$wb_p50"
printf 'best     catalog-loadtest  %10.1f requests/s  p50 %7.3f ms\n' "$ob_rps" "$ob_p50"
awk -v orps="$o_rps" -v wrps="$w_rps" -v op="$o_p50" -v wp="$w_p50" -v oc="$o_cpu" -v wc="$w_cpu" 'BEGIN {
	printf "ratio    requests/s catalog-loadtest/wrk = %.3f (goal >= 1.0)\n", orps / wrps
	printf "ratio    p50 catalog-loadtest/wrk        = %.3f (goal within 0.90..1.10)\n", op / wp
	printf "ratio    CPU/request catalog-loadtest/wrk = %.3f (lower is better)\n", oc / wc }'
awk -v orps="$ob_rps" -v wrps="$wb_rps" -v op="$ob_p50" -v wp="$wb_p50" 'BEGIN {
	printf "ratio    best requests/s = %.3f, p50 of the best runs = %.3f\n", orps / wrps, op / wp }'
