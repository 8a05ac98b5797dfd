"""Azure discovery against the wire-level fakes of Resource Manager and IMDS: azure-identity itself fetches the
managed identity's token from the fake IMDS; the scale set's VMs (paginated with nextLink) become the inventory
under their Scheduled Events names, reached at their NICs' private addresses; errors keep the inventory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from controller.core.inventory import Inventory
from controller.hosts.discovering import Discovery
from controller.hosts.fleet import Fleet
from controller.platforms.azure.arm import ArmApi, ManagedIdentity, StaticToken, TokenSource
from controller.platforms.azure.discovering import Agents, AzureDiscovery, ScaleSet
from tests.fakes.azure_arm import FakeArm
from tests.fakes.azure_imds import FakeImds
from tests.fakes.threaded import Handle, serve
from tests.support.tasks import async_test

SUB, GROUP = "0000-sub", "drainctl-centralus"
TOKEN = FakeImds().identity_token


@pytest.fixture
def arm() -> Iterator[Handle[FakeArm]]:
    with serve(FakeArm(page_size=1, require_token=TOKEN), name="fake-arm") as handle:
        handle.add_scale_set(SUB, GROUP, "api", {"0": "10.1.0.4", "3": "10.1.0.7"})
        yield handle


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Handle[FakeImds]]:
    with serve(FakeImds(), name="fake-imds") as handle:
        # azure-identity's documented override of the IMDS address (AZURE_POD_IDENTITY_AUTHORITY_HOST).
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", handle.url)
        yield handle


class Bed:
    def __init__(self, arm: Handle[FakeArm], credentials: TokenSource) -> None:
        self.registry = CollectorRegistry()
        self.inventory = Inventory()
        self.fleet = Fleet(self.inventory, {}, timeout_s=1.0, registry=self.registry)
        self.api = ArmApi(credentials=credentials, base_url=arm.url, attempts=2, retry_initial_s=0.05,
                          retry_max_s=2.0)
        found = AzureDiscovery(self.api, [ScaleSet(SUB, GROUP, "api")], Agents(port=9100, token="agent-token"))
        self.discovery = Discovery("azure", found, self.fleet, interval_s=30.0, retry_max_s=5.0)

    def urls(self) -> dict[str, str]:
        return {name: member.agent_url for name in self.inventory if (member := self.fleet.member(name))}


@async_test
async def test_the_scale_sets_vms_are_found_with_the_managed_identitys_token(
    arm: Handle[FakeArm], imds: Handle[FakeImds]
) -> None:
    bed = Bed(arm, ManagedIdentity())
    await bed.discovery.round()
    arm.add_vm(SUB, GROUP, "api", "5", "10.1.0.9")
    arm.fail_next(1, 429, retry_after="1", match="skiptoken=1")
    await bed.discovery.round()
    await bed.api.aclose()

    assert bed.urls() == {"api_0": "http://10.1.0.4:9100", "api_3": "http://10.1.0.7:9100",
                          "api_5": "http://10.1.0.9:9100"}, "Scheduled Events names, NIC addresses"
    assert dict(bed.inventory) == {"api_0": "api", "api_3": "api", "api_5": "api"}
    member = bed.fleet.member("api_3")
    assert member is not None and member.handles["computer_name"] == "api000003"
    assert bed.registry.get_sample_value("drainctl_discovery_instances", {"platform": "azure"}) == 3
    assert [q["resource"] for q in imds.token_requests] == ["https://management.azure.com"], "one token, cached"
    assert {r.query.get("$skiptoken") for r in arm.requests} >= {None, "1", "2"}, "nextLink was followed"
    assert any(r.status == 429 for r in arm.requests) and all(r.authorization == f"Bearer {TOKEN}"
                                                              for r in arm.requests)


@async_test
async def test_failed_rounds_keep_the_inventory(arm: Handle[FakeArm]) -> None:
    bed = Bed(arm, StaticToken(TOKEN))
    await bed.discovery.round()
    arm.remove_vm(SUB, GROUP, "api", "3")
    arm.fail_next(3, 500, retry_after="1", match="networkInterfaces")
    unavailable_delay_s = await bed.discovery.round()
    arm.malformed_next(1)
    await bed.discovery.round()
    await bed.api.aclose()
    expired = Bed(arm, StaticToken("expired"))
    expired.fleet.apply("azure", [m for n in ["api_0", "api_3"] if (m := bed.fleet.member(n)) is not None])
    await expired.discovery.round()
    await expired.api.aclose()

    assert set(bed.inventory) == {"api_0", "api_3"}, "no failed round shrank the inventory"
    assert set(expired.inventory) == {"api_0", "api_3"}
    assert unavailable_delay_s >= 1.0, "the next round honours Retry-After"
    assert any(r.status == 401 for r in arm.requests)
