"""The Kubernetes manifests (deploy/kubernetes/, with the example) validated offline against the API's own
models: each document is read field by field into the official `kubernetes` client's model of its kind
(V1Deployment, V1Role, ...), refusing any field the API does not have (the client alone ignores them) and any
required field that is missing (the models' own validation). Those models are generated from the Kubernetes
OpenAPI spec of the client's version (37: Kubernetes 1.33), so no schema files are vendored here.

And what the design needs of them: the agent as a native sidecar that outlives the app's preStop hold.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.support import REPO_ROOT

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
PRIMITIVES = {"str", "int", "float", "bool", "object", "datetime", "date"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted([*MANIFESTS.glob("*.yaml"), *MANIFESTS.glob("examples/*.yaml")]):
        if path.name == "kustomization.yaml":
            continue
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc:
                found.append((f"{path.relative_to(MANIFESTS)}#{index}", doc))
    return found


def _model(doc: dict[str, Any]) -> str:
    group_version = doc["apiVersion"]
    group, _, version = group_version.rpartition("/")
    prefix = "".join(part.capitalize() for part in group.split(".")[:1]) if group else ""
    prefix = "" if prefix in ("", "Apps", "Policy", "Rbac", "Coordination") else prefix
    return f"{version.capitalize()}{prefix}{doc['kind']}"


def _check(value: Any, kind: str, where: str) -> None:
    """Every key of `value` is a field of the model `kind`, recursively; the model's required fields are set."""
    listed = re.fullmatch(r"[Ll]ist\[(.+)\]", kind)
    mapped = re.fullmatch(r"[Dd]ict\[str, (.+)\]", kind) or re.fullmatch(r"dict\(str, (.+)\)", kind)
    if listed:
        assert isinstance(value, list), f"{where}: expected a list"
        for index, item in enumerate(value):
            _check(item, listed[1], f"{where}[{index}]")
    elif mapped:
        assert isinstance(value, dict), f"{where}: expected a mapping"
        for key, item in value.items():
            _check(item, mapped[1], f"{where}.{key}")
    elif kind not in PRIMITIVES:
        model = getattr(client, kind)
        assert isinstance(value, dict), f"{where}: expected a {kind} mapping"
        fields = {wire: name for name, wire in model.attribute_map.items()}
        unknown = set(value) - set(fields)
        assert not unknown, f"{where}: {kind} has no field {sorted(unknown)}"
        for wire, item in value.items():
            _check(item, model.openapi_types[fields[wire]], f"{where}.{wire}")
        # The model's own checks: required fields, enums.
        client.ApiClient().deserialize(json.dumps(value), kind, "application/json")


@pytest.mark.parametrize(("where", "doc"), _documents(), ids=[where for where, _ in _documents()])
def test_every_manifest_is_a_valid_object_of_its_kind(where: str, doc: dict[str, Any]) -> None:
    _check(doc, _model(doc), where)


def test_a_field_the_api_does_not_have_is_refused() -> None:
    """The check can fail: a misspelt field (what `kubectl apply` rejects) is named."""
    (_, deployment), *_ = [(w, d) for w, d in _documents() if d["kind"] == "Deployment"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(AssertionError, match="imagePullPolicyy"):
        _check(broken, _model(broken), "broken")


def test_the_agent_is_a_native_sidecar_that_outlives_the_apps_prestop_hold() -> None:
    example = [d for w, d in _documents() if w.startswith("examples/") and d["kind"] == "Deployment"]
    (pod,) = [d["spec"]["template"]["spec"] for d in example]
    (agent,) = [c for c in pod.get("initContainers", []) if c["name"] == "drainctl-agent"]
    assert agent["restartPolicy"] == "Always", "an init container with restartPolicy Always: a native sidecar"
    assert "drainctl-agent" not in [c["name"] for c in pod["containers"]], "not a plain container"
    assert agent["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    assert any("preStop" in c.get("lifecycle", {}) for c in pod["containers"])


