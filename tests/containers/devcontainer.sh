# devcontainer.sh: the section devcontainer of tests/containers/run.sh, which sources this
# file after its setup and helpers (never run on its own); the functions read run.sh's
# settings ($repo, $cache, $work, $netns, ...).
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck shell=bash disable=SC2015,SC2154

# --- devcontainer ----------------------------------------------------------------------------
# dc SECONDS SUBCOMMAND ARGS...: the devcontainers CLI (npm, pinned by
# tests/containers/devcontainer/package-lock.json) driving podman, on the workspace copy,
# for at most SECONDS.
dc() {
	local limit=$1 sub=$2
	shift 2
	local extra=()
	# The CLI runs a non-root remoteUser under podman with --userns=keep-id, which only rootless
	# podman has; an explicit identity mapping (what rootful podman does anyway) replaces it.
	# Docker (a Codespace) never reads this file.
	# The workspace copy sits inside this checkout: without --mount-workspace-git-root false
	# the CLI would mount the enclosing git work tree instead of the copy.
	[[ $sub == up ]] && extra=(--override-config "$work/devcontainer-podman.json")
	[[ $sub == up || $sub == exec ]] && extra+=(--mount-workspace-git-root false)
	timeout "$limit" "$repo/tests/containers/devcontainer/node_modules/.bin/devcontainer" "$sub" \
		--docker-path podman --workspace-folder "$dc_ws" "${extra[@]}" "$@"
}

section_devcontainer() {
	local name=devcontainer
	say "devcontainer: npm ci @devcontainers/cli, devcontainer up"
	if [[ ! -x tests/containers/devcontainer/node_modules/.bin/devcontainer ]]; then
		command -v npm >/dev/null || die "npm is not installed (Debian package npm)"
		(cd tests/containers/devcontainer && timeout 600 npm ci --no-audit --no-fund) >"$work/npm.log" 2>&1 || {
			fail "$name: npm ci (@devcontainers/cli)" "$(tail -n 5 "$work/npm.log")"
			return 0
		}
	fi
	# The workspace: a copy of the checkout (tracked and new files, as a clone would have them)
	# owned by uid 1000, the container's user: a learner's checkout is their own.  Always at
	# the same path, so the CLI's image (named after it) is the cached one on the next run.
	dc_ws=$cache/devcontainer/catalog
	rm -rf "$dc_ws"
	mkdir -p "$dc_ws"
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$dc_ws" -xf -
	chown -R 1000:1000 "$dc_ws"
	local config
	config=$(dc 60 read-configuration 2>/dev/null) || true
	python3 -c '
import json, sys
c = json.loads(sys.argv[1])["configuration"]
ports = c.get("forwardPorts", [])
attrs = c.get("portsAttributes", {})
missing = [p for p in (3000, 8080, 9090, 3002) if p not in ports or not attrs.get(str(p), {}).get("label")]
sys.exit("not forwarded and labelled: %s" % missing if missing else 0)' "$config" &&
		ok "$name: devcontainer.json forwards and labels ports 3000, 8080, 9090, 3002" ||
		fail "$name: devcontainer.json forwards and labels ports 3000, 8080, 9090, 3002" "$config"
	python3 - "$dc_ws/.devcontainer/devcontainer.json" >"$work/devcontainer-podman.json" <<'PY'
import json, re, sys
text = re.sub(r"^\s*//.*$", "", open(sys.argv[1]).read(), flags=re.M)
config = json.loads(text)
config["build"]["context"] = "%s/.devcontainer/%s" % (sys.argv[1].rsplit("/.devcontainer/", 1)[0], config["build"]["context"])
config["build"]["dockerfile"] = sys.argv[1].rsplit("/", 1)[0] + "/" + config["build"]["dockerfile"]
config["runArgs"] = config.get("runArgs", []) + ["--uidmap=0:0:65536", "--gidmap=0:0:65536"]
print(json.dumps(config))
PY
	if dc 2400 up >"$work/dc-up.log" 2>&1; then
		ok "$name: devcontainer up (image from .devcontainer/Dockerfile, postCreateCommand make)"
	else
		fail "$name: devcontainer up" "$(tail -n 20 "$work/dc-up.log")"
		devcontainer_rm
		return 0
	fi
	local out
	# shellcheck disable=SC2016 # expanded in the container
	out=$(dc 60 exec bash -c 'id -un; sudo -n true && echo sudo; for t in cc make pg_config psql nginx prometheus curl; do command -v $t >/dev/null || echo "no $t"; done; ls build/catalog-server' 2>&1) || true
	[[ $out == *vscode*sudo*build/catalog-server* && $out != *"no "* ]] &&
		ok "$name: the toolchain is ready for the user vscode (with sudo); make has built the programs" ||
		fail "$name: the toolchain is ready" "$out"
	if dc 900 exec make up >"$work/dc-make-up.log" 2>&1; then
		ok "$name: make up inside the devcontainer"
	else
		fail "$name: make up inside the devcontainer" "$(tail -n 20 "$work/dc-make-up.log")"
	fi
	out=$(dc 30 exec curl -fsS --max-time 10 localhost:3000/health 2>&1) || true
	[[ $out == *'"status":"ok"'* ]] && ok "$name: curl localhost:3000/health through devcontainer exec: ${out##*$'\n'}" ||
		fail "$name: curl /health through devcontainer exec" "$(tail -n 5 <<<"$out")"
	# The lab's scale step as in a Codespace: a normal user, sudo, no writable cgroup.
	if dc 600 exec make scale SERVERS=2 >"$work/dc-scale.log" 2>&1; then
		out=$(dc 60 exec bash -c 'for i in 1 2 3 4; do curl -fsS --max-time 10 localhost:8080/health; echo; done' 2>&1) || true
		[[ $out == *'"server":"app"'* && $out == *'"server":"app2"'* ]] &&
			ok "$name: make scale SERVERS=2: /health through nginx on 8080 reaches app and app2" ||
			fail "$name: make scale SERVERS=2: app and app2 behind 8080" "$(tail -n 5 <<<"$out")"
	else
		fail "$name: make scale SERVERS=2 inside the devcontainer" "$(tail -n 15 "$work/dc-scale.log")"
	fi
	dc 300 exec make down >"$work/dc-down.log" 2>&1 && ok "$name: make down inside the devcontainer" ||
		fail "$name: make down inside the devcontainer" "$(tail -n 10 "$work/dc-down.log")"
	devcontainer_rm
	rm -rf "$dc_ws"
}

# devcontainer_rm: the devcontainer's container (its image stays cached).
devcontainer_rm() {
	local c
	for c in $(podman ps -aq --filter "label=devcontainer.local_folder=$dc_ws"); do
		podman rm -f -t 5 "$c" >/dev/null 2>&1
	done
	return 0
}
