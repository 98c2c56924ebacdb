# kube.sh: the section kube of tests/containers/run.sh, which sources this file after its
# setup and helpers (never run on its own); the functions read run.sh's settings ($repo,
# $cache, $work, $netns, ...).
# "COND && ok ... || fail ..." is an if/else here: ok never fails (report.sh).
# shellcheck shell=bash disable=SC2015,SC2154

# --- kube ------------------------------------------------------------------------------------
# pod_ip POD: the pod's address on the catalog-k8s network (its infra container's).
pod_ip() {
	state "$(podman pod inspect --format '{{.InfraContainerID}}' "$1")" \
		'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
}

section_kube() {
	start_engine
	podman image exists catalog:local || section_image
	local dir=$work/k8s name=kube
	mkdir -p "$dir"
	say "kube: podman kube play of deploy/k8s (kubectl kustomize, tests/containers/kube-play.py)"
	kubectl kustomize deploy/k8s >"$dir/rendered.yaml"
	python3 tests/containers/kube-play.py "$dir/rendered.yaml" "$dir"
	in_ns podman network create catalog-k8s >/dev/null
	if ! in_ns podman kube play --network catalog-k8s "$dir/postgres.yaml" >"$work/kube.log" 2>&1; then
		fail "$name: podman kube play (PostgreSQL StatefulSet's pod)" "$(tail -n 15 "$work/kube.log")"
		kube_down "$dir"
		return 0
	fi
	local pg=postgres-pod-0-postgres ip
	ip=$(pod_ip postgres-pod-0) || true
	# The readinessProbe's command, run as the kubelet would.
	wait_for 90 "pg_isready" podman exec "$pg" pg_isready -U postgres -d catalogdb &&
		ok "$name: the PostgreSQL pod plays and its readinessProbe (pg_isready) passes" ||
		fail "$name: the PostgreSQL pod's readinessProbe passes" "$(podman logs --tail 10 "$pg" 2>&1)"
	local maxc
	# pg_isready also passes while the entrypoint's first-start server (socket only) runs.
	wait_for 60 "psql" podman exec "$pg" psql -U postgres -d catalogdb -Atc 'SELECT 1' || true
	maxc=$(podman exec "$pg" psql -U postgres -d catalogdb -Atc 'SHOW max_connections' 2>&1) || true
	[[ $maxc == 100 ]] && ok "$name: max_connections=\$(POSTGRES_MAX_CONNECTIONS) from the budget ConfigMap: $maxc" ||
		fail "$name: max_connections from the ConfigMap (got $maxc)"

	python3 tests/containers/kube-play.py "$dir/rendered.yaml" "$dir" "$ip"
	in_ns podman kube play --network catalog-k8s "$dir/seed.yaml" >"$work/kube.log" 2>&1 ||
		fail "$name: podman kube play (the seed Job's pod)" "$(tail -n 15 "$work/kube.log")"
	local seed=catalog-seed-seed
	wait_for 300 "seed exit" bash -c "[[ \$(podman inspect --format '{{.State.Status}}' $seed) == exited ]]"
	[[ $(state "$seed" '{{.State.ExitCode}}') == 0 ]] && ok "$name: the seed Job's pod completes (exit 0)" ||
		fail "$name: the seed Job's pod completes" "$(podman logs --tail 10 "$seed" 2>&1)"

	in_ns podman kube play --network catalog-k8s "$dir/catalog.yaml" >"$work/kube.log" 2>&1 ||
		fail "$name: podman kube play (the catalog Deployment)" "$(tail -n 15 "$work/kube.log")"
	local app=catalog-pod-0-catalog app_ip body uid
	app_ip=$(pod_ip catalog-pod-0) || true
	wait_for 60 "ready" http "http://$app_ip:3000/health/ready" || true
	body=$(http "http://$app_ip:3000/health/ready" 2>&1) || true
	[[ $body == *'"status":"ready"'* ]] &&
		ok "$name: the catalog pod serves /health/ready (its readinessProbe) against the PostgreSQL pod: $body" ||
		fail "$name: the catalog pod serves /health/ready" "$body" "$(podman logs --tail 10 "$app" 2>&1)"
	uid=$(podman exec "$app" id -u 2>&1) || true
	[[ $uid == 10001 ]] && ok "$name: the catalog pod runs as user 10001 (securityContext)" ||
		fail "$name: the catalog pod runs as user 10001 (got $uid)"
	podman exec "$app" touch /probe 2>/dev/null && fail "$name: readOnlyRootFilesystem: / is writable" ||
		ok "$name: readOnlyRootFilesystem: the root filesystem is read-only"
	[[ $(cpu_quota "$app") == 1.0 ]] && ok "$name: the cpu limit of 1 is in effect" ||
		fail "$name: the cpu limit of 1 is in effect (quota $(cpu_quota "$app"))"
	kube_down "$dir"
	local left
	left=$(podman ps -a --format '{{.Names}}' | grep -E '^(postgres-pod|catalog-pod|catalog-seed)' || true)
	[[ -z $(podman pod ps -q) && -z $left ]] && ok "$name: podman kube down removes every pod" ||
		fail "$name: pods left after kube down" "$left"
}

kube_down() {
	local f
	for f in catalog seed postgres; do
		[[ -f $1/$f.yaml ]] && in_ns podman kube down "$1/$f.yaml" >/dev/null 2>&1
	done
	in_ns podman volume rm -f catalog-k8s-postgres-data >/dev/null 2>&1
	in_ns podman network rm -f catalog-k8s >/dev/null 2>&1
	return 0
}
