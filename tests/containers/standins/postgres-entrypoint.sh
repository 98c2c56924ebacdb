#!/usr/bin/env bash
# postgres-entrypoint.sh: the postgres:15 stand-in's docker-entrypoint.sh.  What the official
# image does that the layouts rely on, and nothing else:
#   - "-c ..." as the first argument means "postgres -c ...";
#   - as root: PGDATA is made and handed to the postgres user, then this script runs again as it;
#   - an empty PGDATA gets a cluster: superuser POSTGRES_USER with POSTGRES_PASSWORD (required),
#     database POSTGRES_DB (default: the user name), password logins from any host, listening on
#     every address; files in /docker-entrypoint-initdb.d are not supported (no layout has any);
#   - then the server is exec'd with the arguments, so its process title is theirs.
set -euo pipefail

if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi
if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
		echo "postgres: POSTGRES_PASSWORD is not set: the database would accept no login" >&2
		exit 1
	fi
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}
	initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
	if [[ $db != postgres ]]; then
		psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres \
			-c "CREATE DATABASE \"$db\"" >/dev/null
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "postgres: initialised $PGDATA (database $db, user $user)"
fi
exec "$@"
