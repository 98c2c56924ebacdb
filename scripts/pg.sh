#!/usr/bin/env bash
# pg.sh: throwaway or persistent PostgreSQL clusters in a directory of their own.
# Usage:
#   scripts/pg.sh start DIR [PORT]   create the cluster in DIR if there is none, start it on
#                                    127.0.0.1:PORT (default: a free loopback port; the port of
#                                    the last start when still free) and print its exports
#   scripts/pg.sh stop DIR           fast shutdown (fine when not running)
#   scripts/pg.sh env DIR            print the exports of the running cluster
#   scripts/pg.sh status DIR         exit 0 when running, 1 when not
# `start` and `env` print only `export NAME=value` lines on stdout, so
#   source <(scripts/pg.sh start DIR)
# sets PGHOST PGPORT PGUSER PGPASSWORD and DB_HOST DB_PORT DB_USER DB_PASSWORD.
# Everything else goes to stderr.  PG_FAST=1 (tests) turns off fsync, synchronous_commit and
# full_page_writes: fast, and unsafe for data you want to keep.
# Layout of DIR: data/ (the cluster), postgres.log, the unix socket, port (last port used).
# Never touches the system cluster: every command names DIR's data directory explicitly.
set -euo pipefail

# The newest PostgreSQL the distribution installed (15 on Debian 12, 17 on Debian 13).
newest_pg_bin() {
	local dir best=""
	for dir in /usr/lib/postgresql/*/bin; do
		[[ -x $dir/pg_ctl ]] && best=$dir
	done
	printf '%s' "${best:-/usr/lib/postgresql/15/bin}"
}
PG_BIN=${PG_BIN:-$(newest_pg_bin)}
PG_SUPERUSER=postgres
PG_PASSWORD=postgres
START_TIMEOUT_S=60

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# as_postgres CMD...: runs CMD as the postgres user (PostgreSQL refuses to run as root).
as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# port_busy PORT: true when something listens on the TCP port (any address).
port_busy() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htln "sport = :$port" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

# free_port: prints a loopback TCP port nothing listens on.
free_port() {
	local port tries
	for ((tries = 0; tries < 200; tries++)); do
		port=$((20000 + RANDOM % 12768)) # below the ephemeral range (32768 and up)
		if ! port_busy "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "found no free TCP port between 20000 and 32767"
}

is_running() {
	[[ -f $data/PG_VERSION ]] && as_postgres "$PG_BIN/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# running_port: the port of the running postmaster (line 4 of postmaster.pid).
running_port() {
	sed -n 4p "$data/postmaster.pid" 2>/dev/null
}

print_exports() {
	local port=$1
	cat <<EOF
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=$PG_SUPERUSER
export PGPASSWORD=$PG_PASSWORD
export DB_HOST=127.0.0.1
export DB_PORT=$port
export DB_USER=$PG_SUPERUSER
export DB_PASSWORD=$PG_PASSWORD
EOF
}

create_cluster() {
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres: "$dir"
		runuser -u postgres -- test -w "$dir" -a -x "$dir" ||
			die "the postgres user cannot write to $dir (is a parent directory closed to it?); use a directory such as /tmp/NAME or /var/lib/NAME"
	fi
	echo "pg.sh: creating a PostgreSQL cluster in $data" >&2
	local pwfile
	pwfile=$(mktemp "$dir/.pwfile.XXXXXX")
	printf '%s\n' "$PG_PASSWORD" >"$pwfile"
	[[ $(id -u) -eq 0 ]] && chown postgres: "$pwfile"
	if ! as_postgres "$PG_BIN/initdb" -D "$data" -U "$PG_SUPERUSER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C \
		>"$dir/initdb.log" 2>&1; then
		rm -f "$pwfile"
		cat "$dir/initdb.log" >&2
		die "initdb failed in $data (output above)"
	fi
	rm -f "$pwfile"
	# Settings live in the cluster's own postgresql.conf; the port and PG_FAST are per start.
	as_postgres tee -a "$data/postgresql.conf" >/dev/null <<EOF

# catalog (scripts/pg.sh): loopback only, socket inside the cluster's directory.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
timezone = 'UTC'
log_timezone = 'UTC'
max_connections = 100
EOF
}

cmd_start() {
	local want_port=${1:-}
	if [[ -n $want_port ]] && { [[ ! $want_port =~ ^[0-9]{1,5}$ ]] || ((want_port < 1 || want_port > 65535)); }; then
		die "PORT must be a number from 1 to 65535, got '$want_port'"
	fi
	[[ -x $PG_BIN/pg_ctl ]] || die "PostgreSQL is not installed ($PG_BIN/pg_ctl missing); run scripts/install-deps.sh"
	mkdir -p "$dir"
	# The socket path must fit in sun_path (107 bytes): DIR/.s.PGSQL.PORT.
	((${#dir} <= 80)) || die "directory path too long for a unix socket (over 80 characters): $dir"

	if is_running; then
		local port
		port=$(running_port)
		if [[ -n $want_port && $want_port != "$port" ]]; then
			die "the cluster in $dir is already running on port $port, not $want_port; stop it first"
		fi
		echo "pg.sh: PostgreSQL in $dir is already running on 127.0.0.1:$port" >&2
		print_exports "$port"
		return 0
	fi

	[[ -f $data/PG_VERSION ]] || create_cluster

	local port
	if [[ -n $want_port ]]; then
		port_busy "$want_port" && die "port $want_port is busy: something already listens on it; choose another port or leave PORT out"
		port=$want_port
	else
		port=$(cat "$dir/port" 2>/dev/null || true)
		if [[ ! $port =~ ^[0-9]+$ ]] || port_busy "$port"; then
			port=$(free_port)
		fi
	fi

	local fast_options=""
	if [[ ${PG_FAST:-0} == 1 ]]; then
		fast_options=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	# A free port can be taken by someone else before PostgreSQL binds it: when the port was
	# ours to choose, try a few others before giving up.
	local attempt
	for attempt in 1 2 3 4 5; do
		echo "$port" >"$dir/port"
		if as_postgres "$PG_BIN/pg_ctl" start -D "$data" -l "$dir/postgres.log" -w \
			-t "$START_TIMEOUT_S" -o "-p $port$fast_options" >/dev/null 2>&1; then
			break
		fi
		if [[ -z $want_port ]] && ((attempt < 5)) &&
			tail -n 5 "$dir/postgres.log" 2>/dev/null | grep -q 'could not create any TCP/IP sockets'; then
			port=$(free_port)
			continue
		fi
		tail -n 20 "$dir/postgres.log" >&2 2>/dev/null || true
		die "PostgreSQL did not start in $dir on port $port (log above, full log: $dir/postgres.log)"
	done
	echo "pg.sh: PostgreSQL running on 127.0.0.1:$port (data $data, log $dir/postgres.log)" >&2
	print_exports "$port"
}

cmd_stop() {
	if ! is_running; then
		echo "pg.sh: PostgreSQL in $dir is not running" >&2
		return 0
	fi
	as_postgres "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t "$START_TIMEOUT_S" >/dev/null ||
		die "PostgreSQL in $dir did not stop (log: $dir/postgres.log)"
	echo "pg.sh: PostgreSQL in $dir stopped" >&2
}

cmd_env() {
	is_running || die "PostgreSQL in $dir is not running; start it with: scripts/pg.sh start $dir"
	print_exports "$(running_port)"
}

cmd_status() {
	if is_running; then
		echo "pg.sh: PostgreSQL in $dir is running on 127.0.0.1:$(running_port)" >&2
		return 0
	fi
	echo "pg.sh: PostgreSQL in $dir is not running" >&2
	return 1
}

(($# >= 2)) || usage
command=$1
dir=$2
[[ -n $dir ]] || usage
# Absolute paths: pg_ctl runs as another user and the socket setting must not depend on cwd.
if [[ $dir != /* ]]; then dir=$PWD/$dir; fi
dir=${dir%/}
data=$dir/data

case $command in
start) cmd_start "${3:-}" ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
*)
	echo "pg.sh: unknown command '$command'" >&2
	usage
	;;
esac
