"""Shared fixtures: each stack is built once per session under Pulumi's mocks (a few seconds each)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from infra.config import StackConfig, load_stack_file, parse
from infra.mocks import OfflineRun, run_offline
from tests.support import REPO_ROOT

REPO = REPO_ROOT
STACKS = REPO / "stacks"


def stack_document(stack: str) -> dict[str, Any]:
    """A stack file's `config:` map, as a fresh mutable copy."""
    return copy.deepcopy(yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text())["config"])


def parse_document(config: dict[str, Any], stack: str = "test") -> StackConfig:
    return parse(config, stack=stack, where=f"Pulumi.{stack}.yaml")


@pytest.fixture(scope="session")
def built() -> Callable[[str], tuple[StackConfig, OfflineRun]]:
    """`built(name)` -> (config, offline run) for `staging`, `production`, or `production-cloudsql` (production
    with the database on Cloud SQL in us-central1, so both database programs run with replicas)."""
    cache: dict[str, tuple[StackConfig, OfflineRun]] = {}

    def get(name: str) -> tuple[StackConfig, OfflineRun]:
        if name not in cache:
            if name == "production-cloudsql":
                document = stack_document("production")
                document["drainctl:database"] = {
                    "cloud": "gcp", "primary_region": "us-central1", "tier": "db-custom-2-7680", "storage_gb": 64
                }
                config = parse_document(document, stack="production-cloudsql")
            else:
                config = load_stack_file(STACKS / f"Pulumi.{name}.yaml")
            cache[name] = (config, run_offline(config))
        return cache[name]

    return get
