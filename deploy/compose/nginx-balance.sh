#!/bin/sh
# nginx-balance.sh: the balancing method of docker-compose.scaled.yml's nginx, from BALANCE.
# Mounted as /docker-entrypoint.d/40-balance.sh: the nginx image runs it before nginx starts,
# and it writes the line nginx.conf includes in its upstream block (the lab renders the same
# line into its own config, lab/configs.py):
#   round_robin (default)  nginx's default, no directive: each server in turn
#   least_conn             the server with the fewest requests in flight
#   p2c                    random two least_conn: the less busy of two servers drawn at random
# Any other value stops the container before nginx starts.  NGINX_BALANCE_FILE names the file
# written (default /etc/nginx/balance.conf; the tests write elsewhere).
set -eu
balance=${BALANCE:-round_robin}
case $balance in
round_robin) line="# BALANCE=round_robin: nginx's default, no directive (each server in turn)." ;;
least_conn) line="least_conn;  # BALANCE=least_conn" ;;
p2c) line="random two least_conn;  # BALANCE=p2c" ;;
*)
	echo "$0: BALANCE must be round_robin, least_conn or p2c, got '$balance'" >&2
	exit 1
	;;
esac
printf '%s\n' "$line" >"${NGINX_BALANCE_FILE:-/etc/nginx/balance.conf}"
echo "$0: BALANCE=$balance"
