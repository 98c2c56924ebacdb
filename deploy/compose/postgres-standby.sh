#!/usr/bin/env bash
# postgres-standby.sh: the entrypoint of docker-compose.replica.yml's postgres-replica service.
# On its first start (an empty PGDATA) it copies the primary with pg_basebackup, marks the copy
# a standby (standby.signal) that streams from the primary, and then runs the arguments
# ("postgres -c ..."), which start PostgreSQL as a hot standby: read-only queries answered while
# the primary's changes are replayed.  Later starts find PGDATA and only run the server.
#   PRIMARY_HOST, PRIMARY_PORT  the primary (default postgres:5432)
#   POSTGRES_USER, POSTGRES_PASSWORD  a user allowed to replicate (the primary's superuser)
#   STANDBY_NAME  the standby's application_name on the primary (pg_stat_replication)
# Works on the official postgres:15 image and on the project's stand-in of it.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:=postgres}" "${PRIMARY_PORT:=5432}" "${POSTGRES_USER:=postgres}"
: "${STANDBY_NAME:=replica1}"

if [[ $(id -u) == 0 ]]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups bash "$0" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
		echo "postgres-standby: POSTGRES_PASSWORD is not set: cannot log in to the primary" >&2
		exit 1
	fi
	if [[ $POSTGRES_PASSWORD == *[[:space:]\'\\]* ]]; then
		echo "postgres-standby: a password with spaces, quotes or backslashes is not supported here" >&2
		exit 1
	fi
	export PGPASSWORD=$POSTGRES_PASSWORD
	echo "postgres-standby: waiting for the primary $PRIMARY_HOST:$PRIMARY_PORT"
	for _ in $(seq 120); do
		pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$POSTGRES_USER" && break
		sleep 1
	done
	# A copy stopped half-way is not a cluster: start from empty.
	find "$PGDATA" -mindepth 1 -delete
	pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$POSTGRES_USER" -D "$PGDATA" \
		--wal-method=stream --checkpoint=fast --no-password
	touch "$PGDATA/standby.signal"
	# The password goes into the standby's own configuration (inside its volume), as
	# pg_basebackup -R would write it.
	printf "primary_conninfo = 'host=%s port=%s user=%s password=%s application_name=%s'\n" \
		"$PRIMARY_HOST" "$PRIMARY_PORT" "$POSTGRES_USER" "$POSTGRES_PASSWORD" "$STANDBY_NAME" \
		>>"$PGDATA/postgresql.auto.conf"
	echo "postgres-standby: made $PGDATA from $PRIMARY_HOST:$PRIMARY_PORT"
fi
exec "$@"
