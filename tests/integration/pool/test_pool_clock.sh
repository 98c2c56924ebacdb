#!/usr/bin/env bash
# test_pool_clock.sh: runs the pool's unit test binary against the test PostgreSQL, for its
# database part (two workers with skewed clocks, a pipeline with a failing statement, a
# connection whose backend is gone found lost by a write: answered and released).
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec "${CATALOG_BUILD:-build}/tests/test_pool"
