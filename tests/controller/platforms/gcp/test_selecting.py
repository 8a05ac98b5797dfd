"""MIGs selected by label (issue 11, discovery item 2), against the wire-level Compute fake: a MIG has no labels
of its own, so a MIG is selected when the instances it makes get the labels (its instance template's, with its
all-instances configuration on top); the poller and the discovery read the selected MIGs; a failing selection
keeps what it found; the config takes names or labels, not both, and refuses malformed labels in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.config import parse_config
from controller.core.errors import ConfigError
from controller.core.inventory import Inventory
from controller.core.source_metrics import SourceMetrics
from controller.hosts.discovering import Discovery
from controller.hosts.fleet import Fleet
from controller.platforms.gcp.compute import ComputeApi, ComputeUnavailable, StaticToken
from controller.platforms.gcp.discovering import Agents, GcpDiscovery
from controller.platforms.gcp.selecting import Group, Labelled
from controller.platforms.gcp.watching import GcpSource
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.threaded import Handle, serve
from tests.support.tasks import async_test

TOKEN = "ya29.selecting"
API = {"role": "api"}


@pytest.fixture
def fake() -> Iterator[Handle[FakeCompute]]:
    """us-central1/api (template labelled role=api), us-east1/worker (role=worker), europe-west1/api-eu (worker
    template, but its all-instances configuration labels role=api), us-west1/rolling (mid-update from the worker
    template to the api one), us-central1-a/api-zonal (a zonal MIG with the api template)."""
    with serve(FakeCompute(page_size=2, require_token=TOKEN), name="fake-compute") as handle:
        api = handle.add_template("api-tpl", {"role": "api", "team": "edge"})
        worker = handle.add_template("worker-tpl", {"role": "worker"}, region="us-east1")
        handle.set_manager("us-central1", "api", [api])
        handle.set_manager("us-east1", "worker", [worker])
        handle.set_manager("europe-west1", "api-eu", [worker], all_instances_labels={"role": "api"})
        handle.set_manager("us-west1", "rolling", [worker, api])
        handle.set_manager("us-central1-a", "api-zonal", [api], zonal=True)
        yield handle


def compute(fake: Handle[FakeCompute]) -> ComputeApi:
    return ComputeApi(project="proj", credentials=StaticToken(TOKEN), base_url=fake.url, attempts=2,
                      retry_initial_s=0.05, retry_max_s=0.2)


def template_reads(fake: Handle[FakeCompute]) -> list[str]:
    return [r.path for r in fake.requests if "/instanceTemplates/" in r.path]


@async_test
async def test_the_migs_whose_instances_get_the_labels_are_selected_and_each_template_is_read_once(
    fake: Handle[FakeCompute],
) -> None:
    api = compute(fake)
    selection = Labelled(api, API, refresh_s=0.0)
    first = await selection.groups()
    fake.set_manager("asia-east1", "api-new", [fake.add_template("api-tpl-2", {"role": "api"})])
    second = await selection.groups()
    reads = template_reads(fake)
    only_edge = await Labelled(api, {"role": "api", "team": "edge"}, refresh_s=0.0).groups()
    await api.aclose()

    assert first == [Group("europe-west1", "api-eu"), Group("us-central1", "api"), Group("us-west1", "rolling")]
    assert Group("asia-east1", "api-new") in second, "a MIG created later is found at the next refresh"
    assert only_edge == [Group("us-central1", "api"), Group("us-west1", "rolling")], "every label must match"
    assert len(reads) == len(set(reads)) == 3, "templates are immutable: each is read once, not every refresh"
    assert all("filter" not in r.query for r in fake.requests), "a MIG has no labels field to filter on"


@async_test
async def test_a_failing_selection_keeps_the_migs_found_before_and_with_none_found_it_fails(
    fake: Handle[FakeCompute],
) -> None:
    api = compute(fake)
    selection = Labelled(api, API, refresh_s=0.0)
    before = await selection.groups()
    fake.fail_next(10, 503, match="aggregated/instanceGroupManagers")
    during = await selection.groups()
    with pytest.raises(ComputeUnavailable):
        await Labelled(api, API, refresh_s=0.0).groups()
    await api.aclose()

    assert during == before and len(before) == 3


@async_test
async def test_the_poller_and_the_discovery_read_the_labelled_migs(fake: Handle[FakeCompute]) -> None:
    fake.add_instance("us-central1", "api", "api-1", network_ip="10.128.0.11")
    fake.add_instance("us-east1", "worker", "worker-1", network_ip="10.128.0.21")
    fake.add_instance("europe-west1", "api-eu", "api-eu-1", network_ip="10.132.0.5")
    api = compute(fake)
    selection = Labelled(api, API, refresh_s=60.0)
    fleet = Fleet(Inventory(), {}, timeout_s=1.0)
    agents = Agents(project="proj", port=9100, token="agent-token")
    await Discovery("gcp", GcpDiscovery(api, selection, agents), fleet, interval_s=30.0).round()
    fake.mark("api-eu-1", "DELETING", status="PENDING_STOP", shutdown_s=60)
    fake.mark("worker-1", "DELETING", status="PENDING_STOP", shutdown_s=60)
    source = GcpSource(api, selection, metrics=SourceMetrics().of("gcp"), poll_interval_s=5.0, window_s=60.0)
    events, _delay_s = await source.poll()
    group_lists = [r for r in fake.requests if r.path.endswith("/aggregated/instanceGroupManagers")
                   and "pageToken" not in r.query]
    await api.aclose()

    assert dict(fleet.inventory) == {"api-1": "api", "api-eu-1": "api-eu"}, "the worker MIG is not selected"
    assert [e.instance for e in events] == ["api-eu-1"], "the poller watches the same labelled MIGs"
    assert len(group_lists) == 1, "the poller and the discovery share one selection (one list per refresh)"


def test_the_config_takes_names_or_labels_not_both_and_refuses_malformed_labels(tmp_path: Path) -> None:
    base = {"journal": str(tmp_path / "j.sqlite")}
    gcp = {"enabled": True, "project": "p", "auth": "anonymous"}
    both = {**gcp, "groups": [{"region": "r", "name": "m"}], "group_labels": API}
    with pytest.raises(ConfigError, match=r"sources\.gcp: groups and group_labels: .* not both"):
        parse_config({**base, "sources": {"gcp": both}})
    with pytest.raises(ConfigError, match=r"sources\.gcp\.group_labels"):
        parse_config({**base, "sources": {"gcp": {**gcp, "group_labels": {"Role": "api"}}}})
    config = parse_config({**base, "sources": {"gcp": {**gcp, "group_labels": API}}})

    assert config.sources.gcp.group_labels == API and config.sources.gcp.group_refresh_s == 60.0
