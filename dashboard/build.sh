#!/usr/bin/env bash
# build.sh: assembles the built-in dashboard into a folder nginx serves (default build/dashboard).
# Usage: dashboard/build.sh [OUT_DIR]
# Installs the chart library from npm exactly as package-lock.json pins it (npm ci, only when
# node_modules is missing or older than the lockfile), then copies the page, panels.json and
# the library's files into OUT_DIR/ and OUT_DIR/vendor/.  The page then needs no network.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$(dirname "$here")/build/dashboard}

if [[ ! -f $here/node_modules/uplot/dist/uPlot.iife.min.js || $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
	command -v npm >/dev/null 2>&1 || {
		echo "dashboard: npm is missing (Debian packages nodejs and npm; scripts/install-deps.sh installs them)" >&2
		exit 1
	}
	echo "dashboard: npm ci (uPlot as pinned in dashboard/package-lock.json)" >&2
	(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) || {
		echo "dashboard: npm ci failed" >&2
		exit 1
	}
fi

staging=$out.new
rm -rf "$staging"
mkdir -p "$staging/vendor"
cp "$here/index.html" "$here/dashboard.js" "$here/dashboard.css" "$here/panels.json" "$staging/"
cp "$here/node_modules/uplot/dist/uPlot.iife.min.js" "$here/node_modules/uplot/dist/uPlot.min.css" \
	"$here/node_modules/uplot/LICENSE" "$staging/vendor/"
rm -rf "$out"
mv "$staging" "$out"
echo "dashboard: built $out" >&2
