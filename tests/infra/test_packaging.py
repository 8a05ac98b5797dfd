"""The controller's daemon install (`pip install .` without extras) does not pull the Pulumi SDKs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.conftest import REPO


def _is_pulumi(name: str) -> bool:
    return canonicalize_name(name).startswith("pulumi")


def _closure(distribution: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Every installed distribution `pip install <distribution>[extras]` pulls, from installed metadata (no network)."""
    seen: set[str] = set()
    pending = [(distribution, extras)]
    while pending:
        name, wanted = pending.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return seen


def test_base_install_closure_has_no_pulumi_distribution() -> None:
    base = _closure("drainctl")
    assert {"websockets", "aiohttp", "pydantic"} <= base  # the closure really walked the dependencies
    assert sorted(name for name in base if _is_pulumi(name)) == []


def test_infra_extra_is_what_brings_the_pulumi_sdks() -> None:
    with_infra = _closure("drainctl", frozenset({"infra"}))
    assert {"pulumi", "pulumi-gcp", "pulumi-azure-native", "pulumi-random", "pulumi-policy"} <= with_infra


def test_every_pulumi_requirement_is_marked_for_the_infra_extra() -> None:
    pulumi_lines = [line for line in metadata.requires("drainctl") or [] if _is_pulumi(Requirement(line).name)]
    assert pulumi_lines
    for line in pulumi_lines:
        assert re.search(r"""extra\s*==\s*["']infra["']""", str(Requirement(line).marker)), line


def test_pyproject_keeps_pulumi_out_of_the_base_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if _is_pulumi(Requirement(dep).name)]
    extras = project["optional-dependencies"]
    assert {Requirement(dep).name for dep in extras["infra"] if _is_pulumi(Requirement(dep).name)} >= {
        "pulumi", "pulumi-gcp", "pulumi-azure-native", "pulumi-random"
    }
    for name, deps in extras.items():
        if name != "infra":
            assert not [dep for dep in deps if _is_pulumi(Requirement(dep).name)], name


def test_the_node_agents_install_pulls_neither_matplotlib_nor_the_kubernetes_client() -> None:
    """Issue 14, item 7: what only some hosts need is an extra (`[demo]`, `[kubernetes]`, `[gcp]`)."""
    base = _closure("drainctl")
    assert {"websockets", "aiohttp", "pydantic"} <= base
    assert {"matplotlib", "kubernetes", "google-auth", "numpy"} & base == set()
    assert "kubernetes" in _closure("drainctl", frozenset({"kubernetes"}))
    assert "matplotlib" in _closure("drainctl", frozenset({"demo"}))
    assert "google-auth" in _closure("drainctl", frozenset({"gcp"}))
