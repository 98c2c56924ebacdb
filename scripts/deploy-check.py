#!/usr/bin/python3
"""deploy-check-k8s.py: schema and connection-budget check of the rendered Kubernetes manifests.

Usage: kubectl kustomize deploy/k8s | scripts/deploy-check-k8s.py
Reads the multi-document YAML that kustomize prints, checks every field the project uses
against the Kubernetes API (unknown or misspelt fields, wrong types, missing required fields,
references to objects that do not exist) and the connection budget written in
deploy/k8s/kustomization.yaml. Prints one line per problem and exits 1 if there is any.
Needs Debian's python3-yaml (run with /usr/bin/python3). No cluster is contacted.
"""

import configparser
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


def main():
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


if __name__ == "__main__":
    sys.exit(main())
