#!/usr/bin/python3
"""deploy_check.py: the file checks behind tests/integration/deploy/deploy_check.sh (no Docker engine, no
cluster).

Usage (each prints one line per problem and exits 1 if there is any):
  kubectl kustomize deploy/k8s | deploy_check.py k8s
      every field the manifests use against the Kubernetes API (unknown or misspelt fields,
      wrong types, missing required fields, references to objects that do not exist), the
      probes and resources of the API Deployment, and the connection budget written in
      deploy/k8s/kustomization.yaml.
  docker-compose -f FILE config | deploy_check.py compose single|scaled COMPOSE_DIR [PANELS]
      the layout the scenario needs (ports, pools, CPU limits, seed, Prometheus, Grafana),
      every published port bound to CATALOG_BIND (default 127.0.0.1), Grafana's admin
      password the GRAFANA_ADMIN_PASSWORD of the environment `config` ran in,
      Prometheus and nginx configs consistent with the services; the exporters (pinned
      images, DATA_SOURCE_NAME = the app's database, process-exporter seeing and grouping the
      postgres service's processes) and every job the dashboard's queries need (PANELS,
      default COMPOSE_DIR/../../dashboard/panels.json) scraped, without the exporters' own
      process_*/go_* metrics.
  deploy_check.py dockerfile-script DOCKERFILE
      prints the build stage as a bash script to run in a copy of the repository: RUN
      commands as written, its apt-get install replaced by a check that the same packages
      are installed here.
  deploy_check.py dockerfile-facts DOCKERFILE
      multi-stage, non-root, HEALTHCHECK, runtime stage without -dev packages; prints the
      runtime packages and the binaries copied from the build stage.
Needs Debian's python3-yaml (run with /usr/bin/python3).
"""

import configparser
import os
import re
import sys

import yaml

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


# --- schema: the allowed fields of each object the project uses -------------------------
# A dict maps field -> sub-schema; a type (str, int, bool) is a leaf; [x] is a list of x;
# ANY accepts anything (free-form maps such as labels). Keys in REQUIRED must be present.
ANY = object()
STRING_MAP = {"__map__": str}
REQUIRED = "__required__"

metadata = {"name": str, "namespace": str, "labels": STRING_MAP, "annotations": STRING_MAP,
            REQUIRED: ["name"]}
selector = {"matchLabels": STRING_MAP, REQUIRED: ["matchLabels"]}
port_ref = ANY  # int or named port
probe = {
    "httpGet": {"path": str, "port": port_ref, "scheme": str, REQUIRED: ["port"]},
    "tcpSocket": {"port": port_ref, REQUIRED: ["port"]},
    "exec": {"command": [str], REQUIRED: ["command"]},
    "initialDelaySeconds": int, "periodSeconds": int, "timeoutSeconds": int,
    "failureThreshold": int, "successThreshold": int,
}
quantity = ANY  # "500m", "1", 1, "64Mi"
resources = {"requests": {"cpu": quantity, "memory": quantity, "storage": quantity},
             "limits": {"cpu": quantity, "memory": quantity}}
env_var = {
    "name": str, "value": str,
    "valueFrom": {
        "fieldRef": {"fieldPath": str, "apiVersion": str, REQUIRED: ["fieldPath"]},
        "secretKeyRef": {"name": str, "key": str, REQUIRED: ["name", "key"]},
        "configMapKeyRef": {"name": str, "key": str, REQUIRED: ["name", "key"]},
    },
    REQUIRED: ["name"],
}
container_security = {"allowPrivilegeEscalation": bool, "readOnlyRootFilesystem": bool,
                      "runAsNonRoot": bool, "runAsUser": int, "runAsGroup": int,
                      "capabilities": {"drop": [str], "add": [str]}}
container = {
    "name": str, "image": str, "imagePullPolicy": str, "command": [str], "args": [str],
    "env": [env_var],
    "envFrom": [{"configMapRef": {"name": str}, "secretRef": {"name": str}}],
    "ports": [{"name": str, "containerPort": int, "protocol": str,
               REQUIRED: ["containerPort"]}],
    "readinessProbe": probe, "livenessProbe": probe, "startupProbe": probe,
    "resources": resources,
    "lifecycle": {"preStop": {"exec": {"command": [str]}}},
    "securityContext": container_security,
    "volumeMounts": [{"name": str, "mountPath": str, "subPath": str, "readOnly": bool,
                      REQUIRED: ["name", "mountPath"]}],
    REQUIRED: ["name", "image"],
}
pod_spec = {
    "containers": [container], "restartPolicy": str, "terminationGracePeriodSeconds": int,
    "securityContext": {"runAsNonRoot": bool, "runAsUser": int, "runAsGroup": int,
                        "fsGroup": int},
    "volumes": [{"name": str, "configMap": {"name": str}, "secret": {"secretName": str},
                 REQUIRED: ["name"]}],
    REQUIRED: ["containers"],
}
pod_template = {"metadata": {"labels": STRING_MAP, "annotations": STRING_MAP},
                "spec": pod_spec, REQUIRED: ["spec"]}
SCHEMAS = {
    ("v1", "Namespace"): {},
    ("v1", "ConfigMap"): {"data": STRING_MAP},
    ("v1", "Secret"): {"data": STRING_MAP, "stringData": STRING_MAP, "type": str},
    ("v1", "Service"): {"spec": {
        "selector": STRING_MAP, "clusterIP": str, "type": str,
        "ports": [{"name": str, "port": int, "targetPort": port_ref, "protocol": str,
                   REQUIRED: ["port"]}],
        REQUIRED: ["ports"]}},
    ("apps/v1", "Deployment"): {"spec": {
        "replicas": int, "selector": selector, "template": pod_template,
        "strategy": {"type": str, "rollingUpdate": {"maxUnavailable": ANY, "maxSurge": ANY}},
        REQUIRED: ["selector", "template"]}},
    ("apps/v1", "StatefulSet"): {"spec": {
        "serviceName": str, "replicas": int, "selector": selector, "template": pod_template,
        "volumeClaimTemplates": [{
            "metadata": {"name": str},
            "spec": {"accessModes": [str], "storageClassName": str,
                     "resources": {"requests": {"storage": quantity}}}}],
        REQUIRED: ["serviceName", "selector", "template"]}},
    ("batch/v1", "Job"): {"spec": {
        "backoffLimit": int, "ttlSecondsAfterFinished": int, "template": pod_template,
        REQUIRED: ["template"]}},
    ("autoscaling/v2", "HorizontalPodAutoscaler"): {"spec": {
        "scaleTargetRef": {"apiVersion": str, "kind": str, "name": str,
                           REQUIRED: ["kind", "name"]},
        "minReplicas": int, "maxReplicas": int,
        "metrics": [{"type": str, "resource": {
            "name": str, "target": {"type": str, "averageUtilization": int,
                                    REQUIRED: ["type"]}}}],
        REQUIRED: ["scaleTargetRef", "maxReplicas"]}},
    ("policy/v1", "PodDisruptionBudget"): {"spec": {
        "minAvailable": ANY, "maxUnavailable": ANY, "selector": selector,
        REQUIRED: ["selector"]}},
}


def check_node(where, value, schema):
    if schema is ANY:
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            problem(where, f"expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            check_node(f"{where}[{index}]", item, schema[0])
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            problem(where, f"expected a mapping, got {type(value).__name__}")
            return
        if "__map__" in schema:
            for key, item in value.items():
                check_node(f"{where}.{key}", item, schema["__map__"])
            return
        for key, item in value.items():
            if key not in schema or key == REQUIRED:
                problem(where, f"unknown field '{key}'")
            else:
                check_node(f"{where}.{key}", item, schema[key])
        for key in schema.get(REQUIRED, []):
            if key not in value:
                problem(where, f"missing required field '{key}'")
        return
    # A leaf type. bool is a subclass of int in Python: keep them apart.
    if schema is int and (isinstance(value, bool) or not isinstance(value, int)):
        problem(where, f"expected an integer, got {value!r}")
    elif schema is not int and not isinstance(value, schema):
        problem(where, f"expected {schema.__name__}, got {value!r}")


def check_schema(objects):
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        name = (obj.get("metadata") or {}).get("name", "?")
        where = f"{key[1]}/{name}"
        if key not in SCHEMAS:
            problem(where, f"apiVersion/kind {key[0]}/{key[1]} is not one this check knows")
            continue
        top = {"apiVersion": str, "kind": str, "metadata": metadata, **SCHEMAS[key]}
        check_node(where, obj, top)


# --- references between objects -------------------------------------------------------
def pod_specs(objects):
    for obj in objects:
        template = (obj.get("spec") or {}).get("template")
        if obj.get("kind") in ("Deployment", "StatefulSet", "Job") and template:
            yield obj, template.get("metadata") or {}, template.get("spec") or {}


def check_references(objects):
    names = {(o.get("kind"), o["metadata"]["name"]): o for o in objects}
    for obj, pod_meta, spec in pod_specs(objects):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        labels = pod_meta.get("labels") or {}
        wanted = ((obj["spec"].get("selector") or {}).get("matchLabels") or {})
        if obj["kind"] != "Job" and (not wanted or any(labels.get(k) != v for k, v in wanted.items())):
            problem(where, "selector.matchLabels does not match the pod template's labels")
        for volume in spec.get("volumes") or []:
            if "configMap" in volume and ("ConfigMap", volume["configMap"]["name"]) not in names:
                problem(where, f"volume {volume['name']}: no ConfigMap {volume['configMap']['name']}")
            if "secret" in volume and ("Secret", volume["secret"]["secretName"]) not in names:
                problem(where, f"volume {volume['name']}: no Secret {volume['secret']['secretName']}")
        volume_names = {v["name"] for v in spec.get("volumes") or []}
        volume_names |= {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates") or []}
        for c in spec.get("containers") or []:
            for source in c.get("envFrom") or []:
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if field in source and (kind, source[field]["name"]) not in names:
                        problem(where, f"envFrom: no {kind} {source[field]['name']}")
            for var in c.get("env") or []:
                ref = (var.get("valueFrom") or {})
                for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if field in ref:
                        target = names.get((kind, ref[field]["name"]))
                        if target is None:
                            problem(where, f"env {var['name']}: no {kind} {ref[field]['name']}")
                        elif ref[field]["key"] not in (target.get("data") or {}):
                            problem(where, f"env {var['name']}: {kind} has no key {ref[field]['key']}")
            for mount in c.get("volumeMounts") or []:
                if mount["name"] not in volume_names:
                    problem(where, f"volumeMount {mount['name']}: no such volume")
            port_names = {p.get("name") for p in c.get("ports") or []}
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                for kind in ("httpGet", "tcpSocket"):
                    port = ((c.get(probe_name) or {}).get(kind) or {}).get("port")
                    if isinstance(port, str) and port not in port_names:
                        problem(where, f"{probe_name}: no container port named {port}")
    pods = [(o, m.get("labels") or {}, s) for o, m, s in pod_specs(objects)]
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = obj.get("spec") or {}
        if obj["kind"] in ("Service", "PodDisruptionBudget"):
            sel = spec.get("selector") or {}
            sel = sel.get("matchLabels", sel) if obj["kind"] == "PodDisruptionBudget" else sel
            matched = [p for p in pods if sel and all(p[1].get(k) == v for k, v in sel.items())]
            if not matched:
                problem(where, f"selector {sel} matches no pod template")
            if obj["kind"] == "Service":
                for port in spec.get("ports") or []:
                    target = port.get("targetPort", port.get("port"))
                    known = {cp.get("name") if isinstance(target, str) else cp.get("containerPort")
                             for _, _, s in matched for c in s.get("containers") or []
                             for cp in c.get("ports") or []}
                    if target not in known:
                        problem(where, f"targetPort {target} is not a port of the selected pods")
        if obj["kind"] == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef") or {}
            if (ref.get("kind"), ref.get("name")) not in names:
                problem(where, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} does not exist")
            if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
                problem(where, "minReplicas is greater than maxReplicas")
            for metric in spec.get("metrics") or []:
                if (metric.get("resource") or {}).get("name") == "cpu":
                    target = names.get((ref.get("kind"), ref.get("name")))
                    for c in ((target or {}).get("spec", {}).get("template", {})
                              .get("spec", {}).get("containers") or []):
                        if "cpu" not in ((c.get("resources") or {}).get("requests") or {}):
                            problem(where, f"CPU target but container {c['name']} requests no CPU")


# --- the catalog's own requirements ----------------------------------------------------
def find(objects, kind, prefix):
    """The one object of KIND whose name is PREFIX or PREFIX-<kustomize hash>."""
    found = [o for o in objects if o.get("kind") == kind and
             re.fullmatch(re.escape(prefix) + r"(-[a-z0-9]{10})?", o["metadata"]["name"])]
    if len(found) != 1:
        problem(f"{kind}/{prefix}", f"expected exactly one, found {len(found)}")
        return None
    return found[0]


def integer(where, text):
    try:
        return int(str(text).strip())
    except ValueError:
        problem(where, f"expected a whole number, got {text!r}")
        return 0


def check_catalog(objects):
    deployment = find(objects, "Deployment", "catalog")
    if deployment:
        spec = deployment["spec"]["template"]["spec"]
        c = spec["containers"][0]
        where = "Deployment/catalog"
        if ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path") != "/health/ready":
            problem(where, "readinessProbe must be GET /health/ready (database reachable)")
        if ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path") != "/health/live":
            problem(where, "livenessProbe must be GET /health/live (process serving)")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in (res.get(part) or {}):
                    problem(where, f"resources.{part}.{what} is not set")
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        find(objects, kind, "catalog")


def check_budget(objects):
    hpa = find(objects, "HorizontalPodAutoscaler", "catalog")
    config = find(objects, "ConfigMap", "catalog-config")
    budget = find(objects, "ConfigMap", "catalog-connection-budget")
    bouncer_config = find(objects, "ConfigMap", "pgbouncer-config")
    bouncer = find(objects, "Deployment", "pgbouncer")
    postgres = find(objects, "StatefulSet", "postgres")
    if not all((hpa, config, budget, bouncer_config, bouncer, postgres)):
        return
    where = "connection budget"
    max_replicas = hpa["spec"]["maxReplicas"]
    pool_max = integer("catalog-config DB_POOL_MAX", config["data"].get("DB_POOL_MAX"))
    app_budget = integer("APP_CONNECTION_BUDGET", budget["data"].get("APP_CONNECTION_BUDGET"))
    pg_max = integer("POSTGRES_MAX_CONNECTIONS", budget["data"].get("POSTGRES_MAX_CONNECTIONS"))
    reserved = integer("POSTGRES_RESERVED_CONNECTIONS",
                       budget["data"].get("POSTGRES_RESERVED_CONNECTIONS"))
    if pool_max <= 0:
        problem(where, f"DB_POOL_MAX must be at least 1, got {pool_max}")
    if max_replicas * pool_max > app_budget:
        problem(where, f"HPA maxReplicas {max_replicas} x DB_POOL_MAX {pool_max} = "
                       f"{max_replicas * pool_max} > APP_CONNECTION_BUDGET {app_budget}")
    if config["data"].get("DB_HOST") != "pgbouncer":
        problem(where, f"the API servers must reach the database through PgBouncer "
                       f"(DB_HOST=pgbouncer), not {config['data'].get('DB_HOST')!r}")

    ini = configparser.ConfigParser(inline_comment_prefixes=(";",), comment_prefixes=(";", "#"),
                                    interpolation=None)
    ini.read_string(bouncer_config["data"].get("pgbouncer.ini", ""))
    settings = ini["pgbouncer"] if ini.has_section("pgbouncer") else {}
    if settings.get("pool_mode") != "transaction":
        problem(where, f"PgBouncer pool_mode must be transaction, got {settings.get('pool_mode')!r}")
    client_max = integer("pgbouncer max_client_conn", settings.get("max_client_conn", "100"))
    if app_budget > client_max:
        problem(where, f"APP_CONNECTION_BUDGET {app_budget} > PgBouncer max_client_conn {client_max}")
    if "max_db_connections" not in settings:
        problem(where, "pgbouncer.ini must set max_db_connections (bounds PostgreSQL's side)")
    server_max = integer("pgbouncer max_db_connections", settings.get("max_db_connections", "0"))
    pool_size = integer("pgbouncer default_pool_size", settings.get("default_pool_size", "20"))
    reserve = integer("pgbouncer reserve_pool_size", settings.get("reserve_pool_size", "0"))
    if pool_size + reserve > server_max:
        problem(where, f"PgBouncer default_pool_size {pool_size} + reserve_pool_size {reserve} > "
                       f"max_db_connections {server_max}")
    bouncers = bouncer["spec"].get("replicas", 1)
    if any(o.get("kind") == "HorizontalPodAutoscaler" and
           o["spec"]["scaleTargetRef"].get("name") == "pgbouncer" for o in objects):
        problem(where, "PgBouncer must not be autoscaled: its replicas are part of the budget")
    if bouncers * server_max > pg_max - reserved:
        problem(where, f"PgBouncer replicas {bouncers} x max_db_connections {server_max} = "
                       f"{bouncers * server_max} > POSTGRES_MAX_CONNECTIONS {pg_max} - "
                       f"POSTGRES_RESERVED_CONNECTIONS {reserved} = {pg_max - reserved}")

    args = " ".join(postgres["spec"]["template"]["spec"]["containers"][0].get("args") or [])
    running = re.search(r"max_connections=(\S+)", args)
    if not running or running.group(1) not in (str(pg_max), "$(POSTGRES_MAX_CONNECTIONS)"):
        problem(where, "PostgreSQL must run with max_connections=$(POSTGRES_MAX_CONNECTIONS) "
                       f"from the budget, found {running.group(0) if running else 'none'}")
    superuser = re.search(r"superuser_reserved_connections=(\d+)", args)
    if superuser and int(superuser.group(1)) > reserved:
        problem(where, f"superuser_reserved_connections {superuser.group(1)} > "
                       f"POSTGRES_RESERVED_CONNECTIONS {reserved}")
    if not problems:
        print(f"budget: {max_replicas} x {pool_max} = {max_replicas * pool_max} <= {app_budget} "
              f"<= {client_max}; {bouncers} x {server_max} = {bouncers * server_max} <= "
              f"{pg_max} - {reserved}")


def run_k8s():
    objects = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    if not objects:
        print("k8s: no objects on standard input (is `kubectl kustomize` output piped in?)")
        return 1
    for obj in objects:
        if not isinstance((obj.get("metadata") or {}).get("name"), str):
            print(f"k8s: an object of kind {obj.get('kind')} has no metadata.name")
            return 1
    check_schema(objects)
    if not problems:
        check_references(objects)
        check_catalog(objects)
        check_budget(objects)
    for line in problems:
        print(f"k8s: {line}")
    print(f"k8s: {len(objects)} objects, {len(problems)} problems")
    return 1 if problems else 0


# --- compose layouts ---------------------------------------------------------------------
def port_entries(service):
    """[(host address, published port, target port)] of a service in `docker-compose config`
    output; the host address is "" when the entry names none (every interface)."""
    entries = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            entries.append((str(entry.get("host_ip") or ""), int(entry.get("published", 0)),
                            int(entry.get("target", 0))))
        else:
            fields = str(entry).split("/")[0].rsplit(":", 2)
            host = fields[0] if len(fields) == 3 else ""
            entries.append((host.strip("[]"), int(fields[-2]) if len(fields) > 1 else 0,
                            int(fields[-1])))
    return entries


def published(service):
    """{published port: target port} of a service in `docker-compose config` output."""
    return {port: target for _, port, target in port_entries(service)}


def check_bindings(where, services, bind):
    """Every published port of every service listens on BIND only (CATALOG_BIND, default
    127.0.0.1): never on every interface unless the operator asked for it."""
    for name, service in sorted(services.items()):
        for host, port, _ in port_entries(service):
            if host != bind:
                shown = f"on {host}" if host else "on every interface (no host address)"
                problem(where, f"{name} publishes {port} {shown}, expected {bind} "
                        "(\"${CATALOG_BIND:-127.0.0.1}:PORT:PORT\")")


def mount_source(service, target):
    """The host path mounted at TARGET, or None."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("target") == target:
                return volume.get("source")
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2 and parts[1] == target:
                return parts[0]
    return None


def condition(service, dependency):
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return "service_started" if dependency in depends else None
    return (depends.get(dependency) or {}).get("condition")


def check_compose(layout, compose_dir, panels_path):
    import os
    config = yaml.safe_load(sys.stdin)
    services = config.get("services") or {}
    where = f"compose {layout}"
    wanted = {"postgres", "seed", "app", "prometheus", "grafana"}
    if layout == "scaled":
        wanted |= {"app2", "nginx"}
    for name in sorted(wanted - services.keys()):
        problem(where, f"no service {name}")
    if wanted - services.keys():
        return
    apps = sorted(n for n, s in services.items() if "catalog-server" in str(s.get("command") or "")
                  or (s.get("image") == "catalog:local" and n != "seed"))
    expected_apps = ["app"] if layout == "single" else ["app", "app2"]
    if apps != expected_apps:
        problem(where, f"API servers are {apps}, expected {expected_apps}")

    pg = services["postgres"]
    if not str(pg.get("image", "")).startswith("postgres:15"):
        problem(where, f"postgres image must be PostgreSQL 15, got {pg.get('image')}")
    if not pg.get("healthcheck"):
        problem(where, "postgres has no healthcheck")
    if not mount_source(pg, "/var/lib/postgresql/data"):
        problem(where, "postgres keeps its data in no volume")
    match = re.search(r"max_connections=(\d+)", " ".join(map(str, pg.get("command") or [])))
    max_connections = int(match.group(1)) if match else 100

    seed = services["seed"]
    if [str(x) for x in seed.get("command") or []] != ["catalog-db", "seed"]:
        problem(where, f"seed must run catalog-db seed, runs {seed.get('command')}")
    if condition(seed, "postgres") != "service_healthy":
        problem(where, "seed must wait for postgres to be healthy")

    builds = set()
    pools = 0
    server_ids = {}
    for name in expected_apps + ["seed"]:
        service = services[name]
        build = service.get("build") or {}
        builds.add((os.path.normpath(str(build.get("context"))), build.get("dockerfile"),
                    service.get("image")))
        if name == "seed":
            continue
        env = service.get("environment") or {}
        if condition(service, "seed") != "service_completed_successfully":
            problem(where, f"{name} must wait for the seed to complete")
        if float(service.get("cpus") or 0) != 1:
            problem(where, f"{name} must be limited to one CPU (cpus: 1), has {service.get('cpus')}")
        if env.get("DB_HOST") != "postgres":
            problem(where, f"{name}: DB_HOST must be postgres, got {env.get('DB_HOST')}")
        server_ids[name] = env.get("SERVER_ID")
        if server_ids[name] != name:
            problem(where, f"{name}: SERVER_ID must be {name}, got {env.get('SERVER_ID')}")
        pool = int(env.get("DB_POOL_MAX", 10))
        pools += pool
        want_pool = 10 if layout == "single" else 5
        if pool != want_pool:
            problem(where, f"{name}: DB_POOL_MAX must be {want_pool}, got {pool}")
        ports = published(service)
        if layout == "single" and ports != {3000: 3000}:
            problem(where, f"{name} must publish 3000:3000, publishes {ports}")
        if layout == "scaled" and ports:
            problem(where, f"{name} must publish no port (nginx is the entry point), has {ports}")
    if len(builds) != 1 or list(builds)[0][1] != "deploy/docker/Dockerfile":
        problem(where, f"the servers and the seed must use one image from deploy/docker/Dockerfile: {builds}")
    if pools > max_connections - 10:
        problem(where, f"pools add up to {pools}, over max_connections {max_connections} - 10 reserved")

    if published(services["prometheus"]).get(9090) != 9090:
        problem(where, "prometheus must publish 9090")
    prometheus_file = mount_source(services["prometheus"], "/etc/prometheus/prometheus.yml")
    if not prometheus_file or not os.path.isfile(prometheus_file):
        problem(where, f"prometheus config {prometheus_file} does not exist")
    else:
        with open(prometheus_file) as f:
            prometheus = yaml.safe_load(f)
        if (prometheus.get("global") or {}).get("scrape_interval") != "5s":
            problem(where, f"{prometheus_file}: scrape_interval must be 5s")
        labelled = {}
        for job in prometheus.get("scrape_configs") or []:
            if job.get("job_name") != "catalog":
                continue
            for group in job.get("static_configs") or []:
                for target in group.get("targets") or []:
                    labelled[target] = (group.get("labels") or {}).get("server")
        expected = {f"{name}:3000": server_ids.get(name) for name in expected_apps}
        if labelled != expected:
            problem(where, f"{prometheus_file}: job catalog targets {labelled}, expected {expected}")
        check_exporters(where, services, prometheus_file, prometheus, panels_path)

    check_bindings(where, services, os.environ.get("CATALOG_BIND") or "127.0.0.1")

    grafana = services["grafana"]
    if published(grafana).get(3002) != 3000:
        problem(where, "grafana must publish 3002 -> 3000")
    env = grafana.get("environment") or {}
    password = os.environ.get("GRAFANA_ADMIN_PASSWORD")
    if env.get("GF_SECURITY_ADMIN_USER") != "admin":
        problem(where, "grafana's admin user must be admin")
    if not password or env.get("GF_SECURITY_ADMIN_PASSWORD") != password:
        problem(where, "grafana's admin password must come from GRAFANA_ADMIN_PASSWORD "
                f"(config has {env.get('GF_SECURITY_ADMIN_PASSWORD')!r})")
    provisioning = mount_source(grafana, "/etc/grafana/provisioning")
    dashboards = mount_source(grafana, "/var/lib/grafana/dashboards")
    if not provisioning or not dashboards:
        problem(where, "grafana must mount the provisioning and the dashboards folders")
    else:
        check_grafana(where, provisioning, dashboards, "/var/lib/grafana/dashboards")

    if layout == "scaled":
        nginx = services["nginx"]
        if published(nginx).get(8080) != 80:
            problem(where, "nginx must publish 8080 -> 80")
        for name in expected_apps:
            if condition(nginx, name) != "service_healthy":
                problem(where, f"nginx must wait for {name} to be healthy")
        nginx_file = mount_source(nginx, "/etc/nginx/nginx.conf")
        if not nginx_file or not os.path.isfile(nginx_file):
            problem(where, f"nginx config {nginx_file} does not exist")
        else:
            check_nginx(where, nginx_file, expected_apps)


# --- exporters: the dashboard's database and host panels -------------------------------------
# Each exporter: its compose service, image repositories, listen port, and the Prometheus job
# the dashboard (and the lab, scripts/lab.sh exporter_jobs) reads it as.
EXPORTERS = {
    "postgres": ("postgres-exporter", ("quay.io/prometheuscommunity/postgres-exporter",
                                       "prometheuscommunity/postgres-exporter"), 9187),
    "processes": ("process-exporter", ("ncabatoff/process-exporter",), 9256),
    "node": ("node-exporter", ("prom/node-exporter",), 9100),
}
# Which job a dashboard metric comes from, by name prefix (first match wins).
METRIC_JOBS = [
    ("pg_", "postgres"), ("namedprocess_", "processes"), ("node_", "node"),
    ("lab_layout_", "node"), ("http_", "catalog"), ("db_pool_", "catalog"),
    ("db_replica_", "catalog"),
    ("process_", "catalog"),
]
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "by", "without", "rate", "irate", "increase",
    "histogram_quantile", "changes", "or", "and", "unless", "on", "ignoring", "group_left",
    "group_right", "bool", "offset", "topk", "bottomk", "abs", "clamp_min", "clamp_max",
    "delta", "deriv", "time", "vector", "scalar", "label_replace", "avg_over_time",
    "max_over_time", "min_over_time", "sum_over_time", "quantile", "stddev", "group",
}
# The exporters' own metrics, dropped at scrape time (samples that must and must not survive).
EXPORTER_OWN = ["process_cpu_seconds_total", "go_goroutines", "promhttp_metric_handler_requests_total"]
EXPORTER_KEEP = ["pg_up", "pg_stat_activity_count", "namedprocess_namegroup_cpu_seconds_total",
                 "node_cpu_seconds_total"]


def dashboard_needs(panels_path):
    """({job: [why]}, {label: {values}}) from the queries of dashboard/panels.json: the jobs
    named in job="..." matchers or implied by the metrics used, and every label matcher value."""
    import json
    with open(panels_path) as f:
        panels = json.load(f)
    exprs = [q["expr"] for p in panels.get("panels") or [] for q in p.get("queries") or []]
    if (panels.get("marks") or {}).get("expr"):
        exprs.append(panels["marks"]["expr"])
    jobs, labels = {}, {}
    for expr in exprs:
        for name, op, value in re.findall(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"', expr):
            if op == "=":
                labels.setdefault(name, set()).add(value)
            elif op == "=~":  # a regex matcher: the values it reads are checked against it
                labels.setdefault(name + "=~", set()).add(value)
            if name == "job" and op == "=":
                jobs.setdefault(value, []).append(f'job="{value}"')
        bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
        for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
            if word in PROMQL_WORDS or re.fullmatch(r"[0-9.e]+", word):
                continue
            job = next((j for prefix, j in METRIC_JOBS if word.startswith(prefix)), None)
            if job is None:
                problem(panels_path, f"metric {word} comes from no known job (add it to METRIC_JOBS"
                        " in tests/integration/deploy/deploy_check.py)")
            else:
                jobs.setdefault(job, []).append(word)
    return jobs, labels


def image_pinned(where, name, image, repositories):
    repository, _, tag = str(image).rpartition(":")
    if "/" in tag or not repository:
        repository, tag = str(image), ""
    if repository not in repositories:
        problem(where, f"{name}: image {image} is not one of {list(repositories)}")
    if not re.fullmatch(r"v?\d+\.\d+\.\d+", tag):
        problem(where, f"{name}: image {image} must be pinned to a version tag (x.y.z), not '{tag or 'latest'}'")


def command_args(service):
    command = service.get("command") or []
    return [str(x) for x in (command if isinstance(command, list) else command.split())]


def flag_value(args, flag):
    """The value of -flag/--flag (as "-flag value" or "-flag=value"), or None."""
    for index, arg in enumerate(args):
        bare = arg.lstrip("-")
        if arg.startswith("-") and bare == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("-") and bare.startswith(flag + "="):
            return bare[len(flag) + 1:]
    return None


def check_exporters(where, services, prometheus_file, prometheus, panels_path):
    from urllib.parse import urlsplit, unquote
    jobs = {}
    for job in prometheus.get("scrape_configs") or []:
        jobs[job.get("job_name")] = job
    try:
        needed, labels = dashboard_needs(panels_path)
    except (OSError, ValueError) as error:
        problem(where, f"{panels_path}: {error}")
        return
    for job in sorted(needed):
        if job not in jobs:
            problem(where, f"{prometheus_file}: the dashboard needs job {job} "
                    f"({', '.join(sorted(set(needed[job]))[:3])}), which is not scraped")

    for job_name, (service_name, repositories, port) in sorted(EXPORTERS.items()):
        service = services.get(service_name)
        if service is None:
            problem(where, f"no service {service_name} (job {job_name} of the dashboard)")
            continue
        image_pinned(where, service_name, service.get("image"), repositories)
        job = jobs.get(job_name)
        if job is None:
            continue
        targets = [t for g in job.get("static_configs") or [] for t in g.get("targets") or []]
        if targets != [f"{service_name}:{port}"]:
            problem(where, f"{prometheus_file}: job {job_name} scrapes {targets}, expected ['{service_name}:{port}']")
        dropped = set()
        for rule in job.get("metric_relabel_configs") or []:
            if rule.get("action") == "drop" and rule.get("source_labels") == ["__name__"]:
                dropped |= {m for m in EXPORTER_OWN + EXPORTER_KEEP if re.fullmatch(rule.get("regex", ""), m)}
        if not set(EXPORTER_OWN) <= dropped:
            problem(where, f"{prometheus_file}: job {job_name} must drop the exporter's own metrics"
                    f" ((process|go|promhttp)_.*); it keeps {sorted(set(EXPORTER_OWN) - dropped)}")
        if dropped & set(EXPORTER_KEEP):
            problem(where, f"{prometheus_file}: job {job_name} drops {sorted(dropped & set(EXPORTER_KEEP))}")

    app_env = (services.get("app") or {}).get("environment") or {}
    exporter = services.get("postgres-exporter")
    if exporter:
        env = exporter.get("environment") or {}
        url = urlsplit(str(env.get("DATA_SOURCE_NAME", "")))
        got = {"DB_HOST": url.hostname, "DB_PORT": str(url.port or 5432), "DB_NAME": url.path.lstrip("/"),
               "DB_USER": unquote(url.username or ""), "DB_PASSWORD": unquote(url.password or "")}
        if url.scheme not in ("postgresql", "postgres"):
            problem(where, "postgres-exporter: DATA_SOURCE_NAME must be a postgresql:// URL")
        for key, value in got.items():
            if str(app_env.get(key)) != value:
                problem(where, f"postgres-exporter: DATA_SOURCE_NAME has {key} {value!r}, the app uses {app_env.get(key)!r}")
        if condition(exporter, "postgres") != "service_healthy":
            problem(where, "postgres-exporter must wait for postgres to be healthy")

    node = services.get("node-exporter")
    if node:
        procfs = flag_value(command_args(node), "path.procfs") or "/proc"
        if node.get("pid") != "host" and mount_source(node, procfs) != "/proc":
            problem(where, f"node-exporter reads {procfs}, which is not the host's /proc (mount /proc there)")

    process = services.get("process-exporter")
    if process:
        args = command_args(process)
        procfs = flag_value(args, "procfs") or "/proc"
        if not (process.get("pid") == "host" and procfs == "/proc") and mount_source(process, procfs) != "/proc":
            problem(where, "process-exporter cannot see the postgres service's processes:"
                    " it needs pid: host (or the host's /proc mounted at its -procfs)")
        config_path = flag_value(args, "config.path")
        config_file = mount_source(process, config_path) if config_path else None
        if not config_file or not os.path.isfile(config_file):
            problem(where, f"process-exporter: -config.path {config_path} is not a mounted file ({config_file})")
        else:
            # The groups the dashboard reads: by name, or through a regex ("postgres" through
            # groupname=~"postgres(-replica[0-9]+)?").
            groupnames = set(labels.get("groupname", set()))
            groupnames |= {"postgres" for rx in labels.get("groupname=~", set()) if re.fullmatch(rx, "postgres")}
            check_process_groups(where, config_file, services["postgres"], groupnames)


def postgres_processes(postgres):
    """[(comm, cmdline)] of the postgres service's processes: the postmaster as the compose
    command starts it and, titled after cluster_name, a few of the processes it forks."""
    command = [str(x) for x in postgres.get("command") or ["postgres"]]
    processes = [("postgres", " ".join(command))]
    match = re.search(r"cluster_name=(\S+)", " ".join(command))
    prefix = f"postgres: {match.group(1)}: " if match else "postgres: "
    for title in ("checkpointer", "walwriter", "postgres catalogdb 172.18.0.5(41000) idle"):
        processes.append(("postgres", prefix + title))
    return processes


def check_process_groups(where, config_file, postgres, groupnames):
    """process-exporter's groups: one per groupname="..." of the dashboard, the "postgres"
    group matching the postgres service's processes and not a PostgreSQL of the host."""
    with open(config_file) as f:
        config = yaml.safe_load(f) or {}
    matchers = config.get("process_names") or []

    def group_of(comm, cmdline):
        for matcher in matchers:
            if "comm" in matcher and comm not in matcher["comm"]:
                continue
            if "exe" in matcher and comm not in [str(e).rsplit("/", 1)[-1] for e in matcher["exe"]]:
                continue
            try:
                if not all(re.search(rx, cmdline) for rx in matcher.get("cmdline") or []):
                    continue
            except re.error as error:
                problem(where, f"{config_file}: bad cmdline regex: {error}")
                return None
            name = str(matcher.get("name", "{{.ExeBase}}"))
            return comm if "{{" in name else name
        return None

    names = {str(m.get("name")) for m in matchers}
    for groupname in sorted(groupnames - names):
        problem(where, f"{config_file}: no group {groupname} (the dashboard reads groupname=\"{groupname}\")")
    if "postgres" in groupnames:
        for comm, cmdline in postgres_processes(postgres):
            group = group_of(comm, cmdline)
            if group != "postgres":
                placed = f"falls in group {group}" if group else "matches no group"
                problem(where, f"{config_file}: the postgres service's process '{cmdline}' {placed};"
                        " it must be in group postgres")
        for cmdline in ("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
                        "postgres: checkpointer "):
            if group_of("postgres", cmdline) == "postgres":
                problem(where, f"{config_file}: a PostgreSQL of the host ('{cmdline}') falls in group postgres")


def check_nginx(where, path, apps):
    with open(path) as f:
        text = re.sub(r"#.*", "", f.read())
    upstream = re.search(r"upstream\s+\w+\s*\{([^}]*)\}", text)
    if not upstream:
        problem(where, f"{path}: no upstream block")
        return
    servers = re.findall(r"^\s*server\s+(\S+?)(?::(\d+))?(\s[^;]*)?;", upstream.group(1), re.M)
    if sorted(host for host, _, _ in servers) != sorted(apps):
        problem(where, f"{path}: upstream servers {[s[0] for s in servers]}, expected {apps}")
    for host, port, options in servers:
        if port != "3000":
            problem(where, f"{path}: {host} must be reached on port 3000")
        if "max_fails=" not in (options or "") or "fail_timeout=" not in (options or ""):
            problem(where, f"{path}: {host} needs max_fails and fail_timeout (passive health checks)")
    for directive in (r"keepalive\s+\d+", r"proxy_http_version\s+1\.1",
                      r'proxy_set_header\s+Connection\s+""', r"proxy_next_upstream\s+error",
                      r"listen\s+80\b"):
        if not re.search(directive, text):
            problem(where, f"{path}: missing {directive}")
    if re.search(r"proxy_next_upstream\s[^;]*non_idempotent", text):
        problem(where, f"{path}: POST must never be retried (non_idempotent)")
    if re.search(r"^\s*(least_conn|ip_hash|hash|random)\b", upstream.group(1), re.M):
        problem(where, f"{path}: the upstream must be round robin")


def check_grafana(where, provisioning, dashboards_dir, dashboards_mount):
    import glob
    import json
    import os
    sources = []
    for path in sorted(glob.glob(os.path.join(provisioning, "datasources", "*.y*ml"))):
        with open(path) as f:
            sources += (yaml.safe_load(f) or {}).get("datasources") or []
    prometheus = [s for s in sources if s.get("type") == "prometheus"]
    if len(prometheus) != 1:
        problem(where, f"grafana: expected one Prometheus data source, found {len(prometheus)}")
    elif prometheus[0].get("url") != "http://prometheus:9090" or prometheus[0].get("uid") != "prometheus":
        problem(where, "grafana: the data source must be uid prometheus at http://prometheus:9090")
    paths = []
    for path in sorted(glob.glob(os.path.join(provisioning, "dashboards", "*.y*ml"))):
        with open(path) as f:
            for provider in (yaml.safe_load(f) or {}).get("providers") or []:
                paths.append((provider.get("options") or {}).get("path"))
    if paths != [dashboards_mount]:
        problem(where, f"grafana: dashboard providers read {paths}, the compose mount is {dashboards_mount}")
    dashboard = os.path.join(dashboards_dir, "catalog.json")
    try:
        with open(dashboard) as f:
            board = json.load(f)
    except (OSError, ValueError) as error:
        problem(where, f"grafana: {dashboard}: {error}")
        return
    if not board.get("title") or not isinstance(board.get("panels"), list):
        problem(where, f"grafana: {dashboard} has no title or no panels")
    uids = set()

    def walk(node):
        if isinstance(node, dict):
            source = node.get("datasource")
            if isinstance(source, dict) and isinstance(source.get("uid"), str):
                uids.add(source["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(board.get("panels"))
    unknown = {u for u in uids if not u.startswith("$") and u != "prometheus"}
    if unknown:
        problem(where, f"grafana: {dashboard} uses data source uids {sorted(unknown)}, provisioned is 'prometheus'")


# --- Dockerfile --------------------------------------------------------------------------
def dockerfile_instructions(path):
    """[(stage index, stage name, INSTRUCTION, arguments)] with continuations joined."""
    with open(path) as f:
        lines = f.read().split("\n")
    joined, current = [], ""
    for line in lines:
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    result, stage, name = [], -1, None
    for line in joined:
        word, _, rest = line.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
            match = re.search(r"\bAS\s+(\S+)", rest, re.I)
            name = match.group(1) if match else None
        result.append((stage, name, word, rest.strip()))
    return result


def apt_packages(command):
    match = re.search(r"apt-get install ([^&;|]*)", command)
    return [w for w in match.group(1).split() if not w.startswith("-")] if match else []


def dockerfile_script(path):
    out = ["set -euo pipefail", 'build_root=$PWD']
    build_stage = None
    for stage, name, word, rest in dockerfile_instructions(path):
        if word == "FROM" and name == "build":
            build_stage = stage
            if not rest.startswith("debian:12"):
                problem(path, f"the build stage must be Debian 12, is {rest}")
        if stage != build_stage or word == "FROM":
            continue
        if word == "RUN":
            packages = apt_packages(rest)
            if "apt-get" in rest and not packages:
                problem(path, f"build stage: RUN {rest}: apt-get without install is never run here")
            elif packages:
                out.append(f"# {rest}")
                for package in packages:
                    out.append(f"dpkg-query -W -f='${{Status}}' {package} 2>/dev/null | grep -q 'install ok installed'"
                               f" || {{ echo 'build-stage package {package} is not installed here'"
                               " >&2; exit 1; }")
            else:
                out.append(rest)
        elif word == "WORKDIR" and rest == "/src":
            out.append('cd "$build_root"')
        elif word == "ENV":
            out.append(f"export {rest}")
        elif word == "COPY" and rest.split() == [".", "."]:
            out.append("# COPY . .: the caller copied the tree with .dockerignore's exclusions")
        else:
            problem(path, f"build stage: {word} {rest} cannot be replayed on the host")
    if build_stage is None:
        problem(path, "no stage named build (FROM debian:12... AS build)")
    if problems:
        for line in problems:
            print(f"dockerfile: {line}", file=sys.stderr)
        return 1
    print("\n".join(out))
    return 0


def dockerfile_facts(path):
    instructions = dockerfile_instructions(path)
    last = max(stage for stage, _, _, _ in instructions)
    final = [(word, rest) for stage, _, word, rest in instructions if stage == last]
    if last < 1:
        problem(path, "must be multi-stage (build stage, runtime stage)")
    if not final[0][1].startswith("debian:12"):
        problem(path, f"the runtime stage must be Debian 12, is {final[0][1]}")
    runtime_packages = [p for word, rest in final if word == "RUN" for p in apt_packages(rest)]
    for package in runtime_packages:
        if package.endswith("-dev") or package in ("build-essential", "gcc", "make"):
            problem(path, f"runtime stage installs build package {package}")
    users = [rest for word, rest in final if word == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problem(path, "the runtime stage must run as a non-root USER")
    if not any(word == "HEALTHCHECK" for word, _ in final):
        problem(path, "the runtime stage has no HEALTHCHECK")
    binaries = []
    for word, rest in final:
        if word == "COPY" and rest.startswith("--from=build"):
            binaries += [os_path.rsplit("/", 1)[-1] for os_path in rest.split()[1:-1]]
    for wanted in ("catalog-server", "catalog-loadtest", "catalog-db"):
        if wanted not in binaries:
            problem(path, f"the image does not get {wanted} from the build stage")
    for line in problems:
        print(f"dockerfile: {line}", file=sys.stderr)
    print("runtime_packages=" + " ".join(runtime_packages))
    print("binaries=" + " ".join(binaries))
    return 1 if problems else 0


def main(argv):
    usage = "usage: deploy_check.py k8s | compose single|scaled DIR [PANELS] | dockerfile-script|dockerfile-facts FILE"
    if len(argv) >= 2 and argv[1] == "k8s":
        return run_k8s()
    if len(argv) == 3 and argv[1] == "dockerfile-script":
        return dockerfile_script(argv[2])
    if len(argv) == 3 and argv[1] == "dockerfile-facts":
        return dockerfile_facts(argv[2])
    if len(argv) in (4, 5) and argv[1] == "compose" and argv[2] in ("single", "scaled"):
        import os
        panels = argv[4] if len(argv) == 5 else os.path.join(argv[3], "..", "..", "dashboard", "panels.json")
        check_compose(argv[2], argv[3], panels)
        for line in problems:
            print(f"{line}")
        print(f"compose {argv[2]}: {len(problems)} problems")
        return 1 if problems else 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
