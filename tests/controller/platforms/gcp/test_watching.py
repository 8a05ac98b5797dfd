"""The GCP source against the fake Compute API: pagination, Retry-After, the events it emits, the credentials it
sends, and the malformed or failing answers it survives (issue 4, items 1 and 4)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controller.config import parse_config
from controller.core.errors import ConfigError
from controller.core.models import EventKind, LifecycleEvent
from controller.core.source_metrics import SourceMetrics
from controller.platforms.gcp.compute import (
    Anonymous,
    ComputeApi,
    CredentialsError,
    GoogleCredentials,
    StaticToken,
    TokenSource,
)
from controller.platforms.gcp.watching import GcpSource, Group
from testbed.harness.fleet import DRAINCTL
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.gce_metadata import FakeMetadata
from tests.fakes.threaded import Handle, serve
from tests.support import running, until, wait_until
from tests.support.tasks import async_test

NAMES = [f"api-{n}" for n in range(5)]


@pytest.fixture
def compute() -> Iterator[Handle[FakeCompute]]:
    with serve(FakeCompute(page_size=2), name="fake-compute") as fake:
        fake.add_group("us-central1", "api", NAMES)
        yield fake


@dataclass
class Polling:
    source: GcpSource
    api: ComputeApi
    metrics: SourceMetrics
    events: list[LifecycleEvent] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"source": "gcp", **labels}) or 0.0


def api_for(fake: Handle[FakeCompute], credentials: TokenSource | None = None) -> ComputeApi:
    return ComputeApi(project="proj", credentials=credentials or Anonymous(), base_url=fake.url, timeout_s=5.0,
                      page_size=2, retry_initial_s=0.05, retry_max_s=5.0)


@contextlib.asynccontextmanager
async def polling(fake: Handle[FakeCompute], *, window_s: float = 600.0) -> AsyncIterator[Polling]:
    """The source watching the fake's MIG every 0.1 s until the block ends."""
    api, metrics = api_for(fake), SourceMetrics()
    source = GcpSource(api, [Group("us-central1", "api")], metrics=metrics.of("gcp"), poll_interval_s=0.1,
                       window_s=window_s, retry_max_s=0.5)
    seen = Polling(source, api, metrics)

    async def collect() -> None:
        async for event in source.watch():
            seen.events.append(event)

    try:
        async with running(collect()):
            yield seen
    finally:
        await api.aclose()


@async_test
async def test_a_paginated_list_gets_every_instance_and_waits_out_a_429s_retry_after(
    compute: Handle[FakeCompute],
) -> None:
    compute.fail_next(1, 429, retry_after="1", match="pageToken=2")
    api = api_for(compute)
    try:
        listing = await api.list_managed_instances("us-central1", "api")
    finally:
        await api.aclose()

    assert [item["name"] for item in listing.items] == NAMES
    assert listing.pages == 3
    lists = compute.lists()
    assert [(r.query.get("pageToken"), r.status) for r in lists] == [(None, 200), ("2", 429), ("2", 200), ("4", 200)]
    assert lists[2].at - lists[1].at >= 1.0, "the page was asked again before Retry-After allowed it"


@async_test
async def test_a_deleting_instance_becomes_one_event_with_the_graceful_shutdown_deadline(
    compute: Handle[FakeCompute],
) -> None:
    async with polling(compute) as seen:
        deadline = compute.mark("api-3", "DELETING", status="PENDING_STOP", shutdown_s=120)
        await until(lambda: seen.events, what="the DELETING instance's event")
        polls = seen.metric("drainctl_source_polls_total")
        await until(lambda: seen.metric("drainctl_source_polls_total") >= polls + 3, what="three more polls")

    [event] = seen.events
    assert (event.instance, event.kind, event.source) == ("api-3", EventKind.TERMINATE, "gcp")
    assert event.not_after == pytest.approx(deadline, abs=0.01)
    assert event.ref is not None and event.ref.startswith("1000000000000003/DELETING/")
    assert seen.metric("drainctl_source_events_total") == 1
    assert seen.metric("drainctl_source_last_success_timestamp_seconds") > 0

    async with polling(compute) as again:  # another poller (a restarted controller) sees the same event
        await until(lambda: again.events, what="the event seen by a second poller")
    assert [e.id for e in again.events] == [event.id]


@async_test
async def test_every_lifecycle_action_is_an_event_of_its_kind_and_quiet_ones_are_not(
    compute: Handle[FakeCompute],
) -> None:
    compute.add_group("us-central1", "api", [f"vm-{n}" for n in range(9)])
    actions = {"vm-0": ("RECREATING", "RUNNING"), "vm-1": ("ABANDONING", "RUNNING"), "vm-2": ("RESTARTING", "RUNNING"),
               "vm-3": ("REFRESHING", "RUNNING"), "vm-4": ("STOPPING", "RUNNING"), "vm-5": ("SUSPENDING", "RUNNING"),
               "vm-6": ("NONE", "PENDING_STOP"), "vm-7": ("VERIFYING", "RUNNING"), "vm-8": ("CREATING", "STAGING")}
    for name, (action, status) in actions.items():
        compute.mark(name, action, status=status)
    async with polling(compute, window_s=300) as seen:
        await until(lambda: len(seen.events) >= 7, what="seven events")
        polls = seen.metric("drainctl_source_polls_total")
        await until(lambda: seen.metric("drainctl_source_polls_total") >= polls + 3, what="three more polls")

    kinds = {e.instance: e.kind for e in seen.events}
    assert kinds == {"vm-0": EventKind.REDEPLOY, "vm-1": EventKind.TERMINATE, "vm-2": EventKind.REBOOT,
                     "vm-3": EventKind.REBOOT, "vm-4": EventKind.STOP, "vm-5": EventKind.STOP, "vm-6": EventKind.STOP}
    first_seen = {e.instance: e.not_after - 300 for e in seen.events}
    assert max(first_seen.values()) - min(first_seen.values()) < 5, "without shutdownDetails: first seen + window"


@async_test
async def test_malformed_json_unknown_actions_bad_instances_and_500s_are_logged_and_survived(
    compute: Handle[FakeCompute], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="drainctl")
    compute.mark("api-0", "TELEPORTING")
    compute.set_raw("api-1", shutdownDetails="soon")
    compute.set_raw("api-2", instance=None)
    async with polling(compute) as seen:
        await until(lambda: seen.metric("drainctl_source_errors_total", kind="unknown_action") == 1,
                    what="the unknown action to be counted")
        compute.malformed_next(1)
        await until(lambda: seen.metric("drainctl_source_errors_total", kind="malformed") >= 3,
                    what="the malformed page and instances to be counted")
        compute.fail_next(3, 500)
        await until(lambda: any(r.status == 500 for r in compute.lists()), what="a 500")
        compute.mark("api-4", "DELETING", shutdown_s=60)
        await until(lambda: seen.events, what="an event after all that")

    assert [e.instance for e in seen.events] == ["api-4"], "the poller kept going"
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "unknown currentAction 'TELEPORTING'" in messages
    assert "not JSON" in messages and "HTTP 500" in messages
    assert "skipped a malformed managed instance" in messages


@async_test
async def test_credentials_from_a_key_file_are_exchanged_at_the_token_uri_and_sent(tmp_path: Path) -> None:
    with serve(FakeCompute(require_token="ya29.from-the-key-file"), name="fake-compute") as fake:
        fake.add_group("us-central1", "api", NAMES)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        key_file = tmp_path / "sa.json"
        key_file.write_text(json.dumps({
            "type": "service_account", "project_id": "proj", "private_key_id": "k1", "private_key": pem,
            "client_email": "drainctl@proj.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"{fake.url}/token",
        }))
        api = api_for(fake, GoogleCredentials.from_file(str(key_file)))
        try:
            listing = await api.list_managed_instances("us-central1", "api")
        finally:
            await api.aclose()
        assert len(listing.items) == len(NAMES)
        assert len(fake.token_grants) == 1, "one token for every page (it was cached)"
        assert {r.authorization for r in fake.lists()} == {"Bearer ya29.from-the-key-file"}

        unauthorized = api_for(fake, StaticToken("wrong"))
        try:
            with pytest.raises(Exception, match="HTTP 401") as refused:
                await unauthorized.list_managed_instances("us-central1", "api")
        finally:
            await unauthorized.aclose()
        assert type(refused.value).__name__ == "ComputeRefused"

    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(CredentialsError):
        GoogleCredentials.from_file(str(broken))


def test_the_gcp_source_config_is_checked_at_the_edge(tmp_path: Path) -> None:
    base = {"journal": str(tmp_path / "j.sqlite")}
    with pytest.raises(ConfigError, match=r"sources\.gcp: project is required"):
        parse_config({**base, "sources": {"gcp": {"enabled": True}}})
    with pytest.raises(ConfigError, match=r"sources\.gcp: groups \(the MIGs by name\) or group_labels"):
        parse_config({**base, "sources": {"gcp": {"enabled": True, "project": "p"}}})
    with pytest.raises(ConfigError, match="auth token needs token_file"):
        parse_config({**base, "sources": {"gcp": {"enabled": True, "project": "p", "auth": "token",
                                                  "groups": [{"region": "r", "name": "m"}]}}})
    config = parse_config({**base, "sources": {"gcp": {"enabled": True, "project": "p", "auth": "anonymous",
                                                       "groups": [{"region": "r", "name": "m"}]}}})
    assert config.sources.gcp.api_url == "https://compute.googleapis.com"
    assert config.sources.gcp.window_s == 600.0


def test_application_default_credentials_come_from_the_metadata_server(tmp_path: Path) -> None:
    """`drainctl run` with `auth: adc` on a "GCE VM": google-auth finds the metadata server (the fake, through
    google-auth's own GCE_METADATA_HOST/GCE_METADATA_IP), takes the service account's token, and the poller
    sends it to the Compute API."""
    with serve(FakeMetadata(), name="fake-metadata") as metadata, \
            serve(FakeCompute(require_token="ya29.metadata-token"), name="fake-compute") as compute:
        compute.add_group("us-central1", "api", NAMES)
        (tmp_path / "api.token").write_text("api-token\n")
        config = {"journal": str(tmp_path / "j.sqlite"),
                  "api": {"listen": "127.0.0.1:0", "token_file": str(tmp_path / "api.token")},
                  "sources": {"local": {"enabled": False},
                              "gcp": {"enabled": True, "project": "proj", "auth": "adc", "api_url": compute.url,
                                      "groups": [{"region": "us-central1", "name": "api"}], "poll_interval_s": 0.2}}}
        path = tmp_path / "controller.yaml"
        path.write_text(yaml.safe_dump(config))
        host = metadata.url.removeprefix("http://")
        env = {**os.environ, "GCE_METADATA_HOST": host, "GCE_METADATA_IP": host}
        env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
        with (tmp_path / "controller.log").open("w") as log:
            daemon = subprocess.Popen([*DRAINCTL, "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                                      stderr=log, env=env, cwd=tmp_path)
        try:
            wait_until(lambda: any(r.status == 200 for r in compute.lists()) or daemon.poll() is not None,
                       what="an authorized list of the MIG")
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
        assert daemon.returncode == 0, (tmp_path / "controller.log").read_text()
        assert {r.authorization for r in compute.lists()} == {"Bearer ya29.metadata-token"}
