#!/usr/bin/env python3
"""kube-play.py: turns the rendered Kubernetes base (kubectl kustomize deploy/k8s) into what
`podman kube play` 4.3 can play, changing only what podman cannot play, never the pod specs:

  kube-play.py RENDERED.yaml OUTDIR [POSTGRES_IP]

writes OUTDIR/postgres.yaml (the StatefulSet's pod template as a Deployment of 1, its
volumeClaimTemplate as a PersistentVolumeClaim), and with POSTGRES_IP OUTDIR/seed.yaml (the
Job's pod template as a Pod) and OUTDIR/catalog.yaml (the Deployment).  Every ConfigMap goes
along; Secrets go as ConfigMaps of the same data (secretKeyRef/secretRef read them alike).
The catalog Deployment plays one replica: podman 4.3 publishes every containerPort on the
host, so a second pod cannot bind 3000.  Two things the kubelet does and podman 4.3 does not are done here: `env` entries take
precedence over `envFrom` (podman lets envFrom win), so every container's envFrom is written
out as plain env entries before its own; and $(VAR) in args is expanded from that environment.
What no pod needs is left out: Namespace, Services, HPA, PDB, and PgBouncer, which the catalog
pod reaches on the PostgreSQL pod directly (DB_HOST postgres, DB_PORT 5432, set on the pod, as
the Service "postgres" would resolve: a hostAliases entry for POSTGRES_IP).
"""
import base64
import copy
import re
import sys

import yaml


def configmaps(docs):
    out = []
    for d in docs:
        if d["kind"] == "ConfigMap":
            out.append(copy.deepcopy(d))
        elif d["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
            data.update(d.get("stringData", {}))
            out.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": d["metadata"]["name"]}, "data": data})
    for m in out:
        m["metadata"].pop("namespace", None)
    return out


def kubelet_env(spec, maps):
    """envFrom as plain env entries, overridden by the container's own env, as Kubernetes
    orders them; then $(VAR) in command and args expanded from the result."""
    data = {m["metadata"]["name"]: m.get("data", {}) for m in maps}
    for c in spec["containers"]:
        own = c.get("env", [])
        names = {e["name"] for e in own}
        env = {}
        for e in c.pop("envFrom", []):
            ref = e.get("configMapRef") or e.get("secretRef")
            env.update(data[ref["name"]])
        c["env"] = [{"name": k, "value": v} for k, v in env.items() if k not in names] + own
        values = dict(env)
        for e in own:
            if "value" in e:
                values[e["name"]] = e["value"]
            elif "configMapKeyRef" in e.get("valueFrom", {}):
                r = e["valueFrom"]["configMapKeyRef"]
                values[e["name"]] = data[r["name"]][r["key"]]
        for key in ("command", "args"):
            if key in c:
                c[key] = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                 lambda m: values.get(m.group(1), m.group(0)), a) for a in c[key]]


def secrets_as_configmaps(spec):
    for c in spec["containers"]:
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                e["configMapRef"] = e.pop("secretRef")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                ref["configMapKeyRef"] = ref.pop("secretKeyRef")


def direct_to_postgres(spec, ip):
    spec["hostAliases"] = [{"ip": ip, "hostnames": ["postgres"]}]
    for c in spec["containers"]:
        env = [e for e in c.get("env", []) if e["name"] not in ("DB_HOST", "DB_PORT")]
        c["env"] = env + [{"name": "DB_HOST", "value": "postgres"},
                          {"name": "DB_PORT", "value": "5432"}]


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    outdir = sys.argv[2]
    ip = sys.argv[3] if len(sys.argv) > 3 else None
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    maps = configmaps(docs)

    sts = copy.deepcopy(by[("StatefulSet", "postgres")])
    claim = sts["spec"].pop("volumeClaimTemplates")[0]
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "catalog-k8s-postgres-data"}, "spec": claim["spec"]}
    pod = sts["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": claim["metadata"]["name"],
                       "persistentVolumeClaim": {"claimName": "catalog-k8s-postgres-data"}}]
    secrets_as_configmaps(pod)
    kubelet_env(pod, maps)
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "postgres", "labels": sts["metadata"].get("labels", {})},
              "spec": {"replicas": 1, "selector": sts["spec"]["selector"],
                       "template": sts["spec"]["template"]}}
    yaml.safe_dump_all(maps + [pvc, deploy], open(f"{outdir}/postgres.yaml", "w"))
    if ip is None:
        return

    job = copy.deepcopy(by[("Job", "catalog-seed")])
    spec = job["spec"]["template"]["spec"]
    secrets_as_configmaps(spec)
    spec["hostAliases"] = [{"ip": ip, "hostnames": ["postgres"]}]
    kubelet_env(spec, maps)
    seed = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "catalog-seed", "labels": job["metadata"].get("labels", {})},
            "spec": spec}
    yaml.safe_dump_all(maps + [seed], open(f"{outdir}/seed.yaml", "w"))

    app = copy.deepcopy(by[("Deployment", "catalog")])
    spec = app["spec"]["template"]["spec"]
    secrets_as_configmaps(spec)
    direct_to_postgres(spec, ip)
    kubelet_env(spec, maps)
    app["metadata"].pop("namespace", None)
    # podman 4.3 publishes each containerPort on the host: a second replica cannot bind 3000.
    app["spec"]["replicas"] = 1
    yaml.safe_dump_all(maps + [app], open(f"{outdir}/catalog.yaml", "w"))


main()
