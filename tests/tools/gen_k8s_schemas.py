"""Write the standalone JSON schemas kubeconform validates the manifests against (offline).

kubeconform fetches schemas from the internet at run time; here they come from two packages and
are committed under ``tests/deploy/schemas/``:

* Kubernetes kinds: the ``kubernetes-validate`` wheel from PyPI bundles the OpenAPI-derived JSON
  schemas of each Kubernetes release (``<version>-local-strict``: every object closed with
  ``additionalProperties: false``). Each kind's schema refers into one shared definitions file;
  it is rewritten here into a single file holding only the definitions it reaches.
* Prometheus Operator kinds (ServiceMonitor, PrometheusRule): the CRDs' ``openAPIV3Schema`` in
  the ``github.com/prometheus-operator/prometheus-operator`` Go module, converted the way
  openapi2jsonschema does (strict: objects without ``x-kubernetes-preserve-unknown-fields`` close).

Descriptions are dropped to keep the files small. Files are named as kubeconform's default
template expects: ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` (``daemonset-apps-v1.json``).

Usage: python gen_k8s_schemas.py --wheel W.whl --k8s-version v1.34.0 --operator-dir DIR --out DIR
(``gen_k8s_schemas.sh`` fetches both inputs and runs this).
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import yaml

# The kinds the manifests under deploy/kubernetes use (a missing one makes kubeconform fail).
K8S_KINDS = [
    "namespace-v1",
    "serviceaccount-v1",
    "configmap-v1",
    "secret-v1",
    "service-v1",
    "daemonset-apps-v1",
    "cronjob-batch-v1",
    "job-batch-v1",
    "priorityclass-scheduling-v1",
    "networkpolicy-networking-v1",
    "role-rbac-v1",
    "rolebinding-rbac-v1",
    "clusterrole-rbac-v1",
    "clusterrolebinding-rbac-v1",
]
OPERATOR_CRDS = ["monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"]
_DEF_REF = re.compile(r"#/\$defs/(.+)$")


def _strip(node: Any) -> Any:
    """Drop descriptions (most of the bytes) everywhere, keeping a property named ``description``."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "description" and isinstance(v, str):
                continue
            out[k] = _strip(v) if k != "properties" else {pk: _strip(pv) for pk, pv in v.items()}
        return out
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and (m := _DEF_REF.search(ref)):
            found.append(m.group(1))
        for v in node.values():
            found.extend(_refs(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(_refs(v))
    return found


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and (m := _DEF_REF.search(ref)):
            out["$ref"] = f"#/$defs/{m.group(1)}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def standalone_kind(root: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``root`` with the closure of the definitions it references inlined under ``$defs``."""
    needed: dict[str, Any] = {}
    todo = _refs(root)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed[name] = defs[name]
        todo.extend(_refs(defs[name]))
    schema = _rewrite_refs(_strip(root))
    schema.pop("$id", None)
    schema["$defs"] = {n: _rewrite_refs(_strip(needed[n])) for n in sorted(needed)}
    return schema


def _crd_node(node: Any) -> Any:
    """OpenAPI v3 (structural CRD schema) to JSON schema, closing objects like ``-strict`` does."""
    if isinstance(node, list):
        return [_crd_node(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _crd_node(v) if k not in ("properties",) else {pk: _crd_node(pv) for pk, pv in v.items()}
           for k, v in node.items() if k != "description"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One schema per served version of a CRD, keyed by kubeconform's file name."""
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    out = {}
    for version in crd["spec"]["versions"]:
        schema = _crd_node(version["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        props["metadata"] = {"type": "object"}
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
        out[name] = schema
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", required=True, type=Path, help="kubernetes_validate-*.whl")
    parser.add_argument("--k8s-version", required=True, help="e.g. v1.34.0")
    parser.add_argument("--operator-dir", required=True, type=Path, help="prometheus-operator module dir")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = f"kubernetes_validate/kubernetes-json-schema/{args.k8s_version}-local-strict/"
    with zipfile.ZipFile(args.wheel) as whl:
        defs = json.loads(whl.read(prefix + "_definitions.json"))["$defs"]
        for kind in K8S_KINDS:
            root = json.loads(whl.read(f"{prefix}{kind}.json"))
            schema = standalone_kind(root, defs)
            (args.out / f"{kind}.json").write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    for crd_file in OPERATOR_CRDS:
        crd = yaml.safe_load((args.operator_dir / "example/prometheus-operator-crd" / crd_file).read_text())
        for name, schema in crd_schemas(crd).items():
            (args.out / name).write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    (args.out / "SOURCE").write_text(
        f"Generated by tests/tools/gen_k8s_schemas.sh: Kubernetes {args.k8s_version} schemas from the "
        f"kubernetes-validate wheel ({args.wheel.name}); Prometheus Operator CRDs from "
        f"{args.operator_dir.name}.\n"
    )


if __name__ == "__main__":
    main()
