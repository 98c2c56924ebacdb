#!/usr/bin/env bash
# lab.sh: the scenario's lab on one machine: PostgreSQL, N API servers, nginx, Prometheus.
# Usage: scripts/lab.sh up|down [--purge]|status|scale N|restart|loadtest|compare|demo|help
# A thin entry point: the lab is the Python program in lab/ (python3 -m lab; docs/lab.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
exec python3 -m lab "$@"
