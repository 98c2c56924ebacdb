#!/usr/bin/env bash
# lint.sh: what `make lint` runs (and `make test` with it): shellcheck on every shell script and
# `clang-format --dry-run -Werror` (the repository's .clang-format) on every C file.  Prints what
# each found and a closing line "lint: N passed, N failed".
#
# Usage: scripts/lint.sh           check
#        scripts/lint.sh --format  rewrite the C files in place (make format), then check
# Shell scripts: every *.sh and every file whose first line is a bash or sh shebang, outside
# build trees, node_modules and .git.  C files: *.c and *.h under lib/, server/, loadtest/,
# dbtool/, tests/ and fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

format=0
case ${1:-} in
--format) format=1 ;;
"") ;;
*) echo "lint.sh: unknown argument $1 (see the head of scripts/lint.sh)" >&2 && exit 2 ;;
esac

for tool in shellcheck clang-format; do
	if ! command -v "$tool" >/dev/null; then
		echo "lint.sh: $tool not found; scripts/install-deps.sh test installs it" >&2
		exit 2
	fi
done

# Everything but build output, dependencies, the lab's state and git's own files.
files() {
	find . \( -name .git -o -name node_modules -o -path './build*' -o -path ./var \) -prune \
		-o -type f "$@" -print | sed 's|^\./||' | LC_ALL=C sort
}

scripts=()
while IFS= read -r f; do
	if [[ $f == *.sh ]] || head -n 1 "$f" | grep -Eq '^#!.*[/ ](ba)?sh$'; then
		scripts+=("$f")
	fi
done < <(files \( -name '*.sh' -o -perm -u+x \))

c_files=()
while IFS= read -r f; do
	case $f in lib/* | server/* | loadtest/* | dbtool/* | tests/* | fuzz/*) c_files+=("$f") ;; esac
done < <(files \( -name '*.c' -o -name '*.h' \))

if ((format)); then
	clang-format -i "${c_files[@]}"
fi

passed=0 failed=0
if shellcheck "${scripts[@]}"; then
	echo "ok   shellcheck: ${#scripts[@]} scripts clean"
	passed=$((passed + 1))
else
	echo "FAIL shellcheck: findings above (${#scripts[@]} scripts checked)"
	failed=$((failed + 1))
fi
if clang-format --dry-run -Werror "${c_files[@]}"; then
	echo "ok   clang-format: ${#c_files[@]} C files formatted (make format rewrites them)"
	passed=$((passed + 1))
else
	echo "FAIL clang-format: the files above differ from .clang-format; run make format"
	failed=$((failed + 1))
fi
echo "lint: $passed passed, $failed failed"
((failed == 0))
