"""Stack config is parsed once into typed objects; every mistake is refused with one line naming the key."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from controller.core.errors import ConfigError
from infra.config import from_pulumi_config, load_stack_file
from tests.infra.conftest import STACKS, parse_document, stack_document


def test_stack_files_describe_the_documented_regions() -> None:
    staging = load_stack_file(STACKS / "Pulumi.staging.yaml")
    production = load_stack_file(STACKS / "Pulumi.production.yaml")
    assert (len(staging.regions("gcp")), len(staging.regions("azure"))) == (1, 1)
    assert len(production.regions("gcp")) == 3
    assert production.regions("azure") == ("centralus", "northeurope", "eastasia")
    assert production.budget.lb_idle_timeout_s == 240
    assert production.database.cloud == "azure" and production.database.primary_region == "centralus"


Mutation = Callable[[dict[str, Any]], None]


def _set(section: str, path: str, value: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> None:
        target = config[section]
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return mutate


REFUSALS: list[tuple[str, Mutation, list[str]]] = [
    ("unknown key in a section", _set("drainctl:gcp", "regionz", []), ["drainctl:gcp.regionz", "unknown key"]),
    ("unknown top-level key", lambda c: c.update({"drainctl:gpc": {}}), ["drainctl:gpc", "unknown key"]),
    ("unknown namespace", lambda c: c.update({"drianctl:gcp": {}}), ["drianctl:gcp", "unknown key"]),
    ("unknown budget timer", _set("drainctl:budget", "idle_s", 3), ["drainctl:budget.idle_s", "unknown key"]),
    ("port as a string", _set("drainctl:app", "app_port", "4000"), ["drainctl:app.app_port", "integer"]),
    ("timer as a string", _set("drainctl:budget", "verify_s", "ten"), ["drainctl:budget.verify_s", "number"]),
    ("region cidr not a network", _set("drainctl:gcp", "regions.0.cidr", "10.0.0.300/20"), ["regions[0].cidr"]),
    (
        "LB idle timeout shorter than the heartbeat",
        _set("drainctl:budget", "lb_idle_timeout_s", 8),
        ["drainctl:budget", "lb_idle_timeout_s (8)", "heartbeat_interval_s (10)"],
    ),
    (
        "Azure LB idle timeout not whole minutes",
        _set("drainctl:budget", "lb_idle_timeout_s", 270),
        ["drainctl:budget.lb_idle_timeout_s (270)", "Azure Standard Load Balancer"],
    ),
    (
        "Azure LB idle timeout above 30 minutes",
        _set("drainctl:budget", "lb_idle_timeout_s", 2400),
        ["drainctl:budget.lb_idle_timeout_s (2400)"],
    ),
    (
        "terminate notification above PT15M",
        _set("drainctl:budget", "platform_notice_s", 1200),
        ["drainctl:budget.platform_notice_s (1200)", "PT5M-PT15M"],
    ),
    (
        "notice too short for drain + verify + margin",
        _set("drainctl:budget", "platform_notice_s", 60),
        ["drainctl:budget", "platform_notice_s (60)"],
    ),
    (
        "load balancer deregistration too long for the notice",
        _set("drainctl:budget", "lb_unhealthy_threshold", 120),
        ["drainctl:budget", "lb_deregistration_s (605", "platform_notice_s (600)"],
    ),
    (
        "GCP check timeout not whole seconds",
        _set("drainctl:budget", "lb_check_timeout_s", 4.5),
        ["drainctl:budget.lb_check_timeout_s (4.5)", "GCP readiness health check"],
    ),
    (
        "Azure probe interval below 5 s",
        lambda c: c["drainctl:budget"].update({"lb_check_interval_s": 3, "lb_check_timeout_s": 3}),
        ["drainctl:budget.lb_check_interval_s (3)", "Azure load balancer probe"],
    ),
    (
        "WebSocket lifetime cap shorter than the notice",
        _set("drainctl:gcp", "websocket_lifetime_s", 300),
        ["drainctl:gcp.websocket_lifetime_s (300)"],
    ),
    ("Cloud Armor window Cloud Armor lacks", _set("drainctl:gcp", "socket_rate_limit.interval_s", 15),
     ["drainctl:gcp.socket_rate_limit.interval_s", "10"]),
    ("primary outside the database's cloud", _set("drainctl:database", "primary_region", "us-central1"),
     ["drainctl:database.primary_region", "us-central1"]),
    ("overlapping region networks", _set("drainctl:azure", "regions.1.cidr", "10.10.0.0/16"),
     ["drainctl:azure.regions[1].cidr", "overlaps drainctl:gcp.regions[0].cidr"]),
    ("region without a declared nearest replica", _set("drainctl:gcp", "regions.2.name", "me-west1"),
     ["drainctl:gcp.regions[2].name", "me-west1"]),
    ("min above max replicas", _set("drainctl:gcp", "regions.0.min_replicas", 9),
     ["drainctl:gcp.regions[0].min_replicas (9)"]),
    ("missing section", lambda c: c.pop("drainctl:database"), ["drainctl:database: missing"]),
]


@pytest.mark.parametrize(("case", "mutate", "needles"), REFUSALS, ids=[case for case, _, _ in REFUSALS])
def test_refused_with_one_line_naming_the_key(case: str, mutate: Mutation, needles: list[str]) -> None:
    config = stack_document("production")
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        parse_document(config)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Pulumi.test.yaml: ")
    for needle in needles:
        assert needle in message


def test_running_program_config_arrives_json_encoded_and_parses_the_same() -> None:
    document = stack_document("production")
    as_pulumi_hands_it_over = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in document.items()
    }
    from_file = parse_document(document, stack="production")
    from_runtime = from_pulumi_config(as_pulumi_hands_it_over, stack="production")
    assert from_runtime == from_file


def test_unreadable_stack_file_is_a_config_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_stack_file(tmp_path / "Pulumi.nope.yaml")
