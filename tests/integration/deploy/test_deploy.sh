#!/usr/bin/env bash
# test_deploy.sh: the deployment files (Docker, Compose, nginx, Prometheus, Grafana,
# Kubernetes) checked without a Docker engine or a cluster; see tests/integration/deploy/deploy_check.sh.
# Prints "deploy: N passed, N failed" and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec bash tests/integration/deploy/deploy_check.sh
