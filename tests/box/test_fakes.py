"""The box's fakes answer the real curl exactly as the boot scripts call them (contracts C1), over real TLS.

Each VM is a loopback address here (`curl --interface`), so the fakes tell callers apart as they do in the
box; the cloud names reach the gateway through `--resolve name:443:<gateway>`, trusted through the box CA's
bundle (`--cacert`, what the VM's CA store holds). Port 443 needs root, like the box itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.box.ca import BoxCa
from tests.box.gateway import CloudGateway, RunningGateway
from tests.box.linklocal import LinkLocal, RunningLinkLocal
from tests.fakes import threaded
from tests.fakes.azure_blob import FakeBlob
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.gcp_secrets import FakeSecretManager
from tests.fakes.gcs import FakeStorage
from tests.fakes.key_vault import FakeKeyVault
from tests.support.marks import needs_root

NET = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}"
"""A loopback /24 of this run's own (the machine is shared: other runs use other addresses)."""
GATEWAY, LINK, GCE_VM, AZURE_VM, AZURE_VM_2, OTHER_VM = (f"{NET}.{i}" for i in (1, 2, 11, 21, 22, 31))
VAULT, ACCOUNT = "kv-staging", "stdrainctlstaging"
CLIENT_ID = "5a1e0c7e-0000-4000-8000-00000000f1ee"
OBJECT = "drainctl/wheelhouse-0123456789abcdef.tar.gz"
ARTIFACT = b"\x1f\x8b the wheelhouse " * 1000

# The shell functions of contracts C1, as the boot scripts define them (the metadata server's URL is the
# link-local fake's, with a port: the tests run it unprivileged).
FUNCTIONS = r"""
set -euo pipefail
gcp_token() {
  curl -sSf -H 'Metadata-Flavor: Google' "$LINK/computeMetadata/v1/instance/service-accounts/default/token" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
gcp_secret() {
  local token; token=$(gcp_token)
  curl -sSf -H "Authorization: Bearer $token" \
    "https://secretmanager.googleapis.com/v1/projects/$1/secrets/$2/versions/latest:access" \
    | python3 -c 'import base64, json, sys; print(base64.b64decode(json.load(sys.stdin)["payload"]["data"]).decode())'
}
gcp_object() {
  local token name; token=$(gcp_token)
  name=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$2")
  curl -sSf -H "Authorization: Bearer $token" -o "$3" "https://storage.googleapis.com/storage/v1/b/$1/o/$name?alt=media"
}
azure_token() {
  curl -sSf -H Metadata:true -G "$LINK/metadata/identity/oauth2/token" --data-urlencode api-version=2018-02-01 \
    --data-urlencode "resource=$1" --data-urlencode "client_id=$2" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
azure_secret() {
  local token; token=$(azure_token https://vault.azure.net "$3")
  curl -sSf -H "Authorization: Bearer $token" "https://$1.vault.azure.net/secrets/$2?api-version=7.4" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])'
}
azure_blob() {
  local token; token=$(azure_token https://storage.azure.com/ "$4")
  curl -sSf -H "x-ms-version: 2021-08-06" -H "Authorization: Bearer $token" -o "$5" \
    "https://$1.blob.core.windows.net/$2/$3"
}
"""


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> BoxCa:
    return BoxCa.create(tmp_path_factory.mktemp("box-ca"))


@pytest.fixture(scope="module")
def link() -> Iterator[RunningLinkLocal]:
    with LinkLocal().serve(LINK, port=0) as running:
        running.add_gcp_vm(GCE_VM, name="api-7f3c", zone="europe-west1-b", project="proj",
                           email="api-fleet@proj.iam.gserviceaccount.com")
        running.add_azure_vm(AZURE_VM, name="api_3", computer_name="api000003",
                             user_data=base64.b64encode(b"#!/bin/bash\necho boot\n").decode(),
                             client_ids=[CLIENT_ID], scale_set="api")
        running.add_azure_vm(AZURE_VM_2, name="api_4", computer_name="api000004", client_ids=[CLIENT_ID],
                             scale_set="api")
        yield running


@pytest.fixture(scope="module")
def cloud(ca: BoxCa) -> Iterator[RunningGateway]:
    compute = FakeCompute(project="proj")
    compute.add_group("europe-west1", "api-mig", ["api-7f3c"])
    with CloudGateway(compute, ca).serve(GATEWAY) as running:  # positional, any order
        running.arm.add_scale_set("sub", "rg", "api", {"3": AZURE_VM})
        yield running


def shell(script: str, *, vm: str, ca: BoxCa, cloud: RunningGateway, link: RunningLinkLocal,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the C1 functions then `script` as a VM would: every curl from the VM's address, names resolved to
    the gateway, the box CA trusted (a curl wrapper on PATH adds --interface/--cacert/--resolve)."""
    resolve = " ".join(cloud.curl_resolve(vaults=[VAULT], accounts=[ACCOUNT]))
    wrapper = f'curl() {{ command curl --interface {vm} --cacert {ca.bundle_path} {resolve} "$@"; }}\n'
    return subprocess.run(["bash", "-c", FUNCTIONS + wrapper + script], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "LINK": link.url}, cwd=cwd)


@needs_root
def test_a_gcp_vm_reads_its_secret_after_one_refusal(ca: BoxCa, cloud: RunningGateway,
                                                     link: RunningLinkLocal) -> None:
    cloud.secrets.put("proj", "agent-token", "first")
    cloud.secrets.put("proj", "agent-token", "agent-s3cret")
    cloud.secrets.refuse_first(per_client=1)

    refused = shell("gcp_secret proj agent-token", vm=GCE_VM, ca=ca, cloud=cloud, link=link)
    served = shell("gcp_secret proj agent-token", vm=GCE_VM, ca=ca, cloud=cloud, link=link)

    assert refused.returncode != 0 and "error: 403" in refused.stderr, refused.stderr
    assert (served.returncode, served.stdout) == (0, "agent-s3cret\n"), served.stderr
    mine = [(a.status, a.authorization) for a in cloud.secrets.accesses if a.client == GCE_VM]
    assert mine == [(403, "Bearer ya29.metadata-token"), (200, "Bearer ya29.metadata-token")], \
        "refused once, then served the latest version, both with the VM's metadata token"
    missing = shell("gcp_secret proj no-such-secret", vm=GCE_VM, ca=ca, cloud=cloud, link=link)
    assert missing.returncode != 0 and "error: 404" in missing.stderr


@needs_root
def test_a_gcp_vm_downloads_an_object_by_its_encoded_name(ca: BoxCa, cloud: RunningGateway,
                                                          link: RunningLinkLocal, tmp_path: Path) -> None:
    cloud.storage.put("proj-drainctl-artifacts", OBJECT, ARTIFACT)

    done = shell(f"gcp_object proj-drainctl-artifacts {OBJECT} wheelhouse.tar.gz && sha256sum wheelhouse.tar.gz",
                 vm=GCE_VM, ca=ca, cloud=cloud, link=link, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == hashlib.sha256(ARTIFACT).hexdigest()
    anonymous = shell("curl -sS 'https://storage.googleapis.com/storage/v1/b/proj-drainctl-artifacts/o/"
                      "drainctl%2Fnone?alt=media'", vm=GCE_VM, ca=ca, cloud=cloud, link=link)
    error = json.loads(anonymous.stdout)["error"]
    assert (error["code"], error["errors"][0]["reason"]) == (401, "required")
    missing = shell("gcp_object proj-drainctl-artifacts drainctl/none out", vm=GCE_VM, ca=ca, cloud=cloud,
                    link=link, cwd=tmp_path)
    assert missing.returncode != 0 and "error: 404" in missing.stderr


@needs_root
def test_an_azure_vm_reads_key_vault_after_a_challenge_and_one_refusal(ca: BoxCa, cloud: RunningGateway,
                                                                       link: RunningLinkLocal) -> None:
    cloud.vault.put(VAULT, "push-token", "push-s3cret")
    cloud.vault.refuse_first(per_client=1)

    challenge = shell(f"curl -sS -D - 'https://{VAULT}.vault.azure.net/secrets/push-token?api-version=7.4'",
                      vm=AZURE_VM, ca=ca, cloud=cloud, link=link)
    refused = shell(f"azure_secret {VAULT} push-token {CLIENT_ID}", vm=AZURE_VM, ca=ca, cloud=cloud, link=link)
    served = shell(f"azure_secret {VAULT} push-token {CLIENT_ID}", vm=AZURE_VM, ca=ca, cloud=cloud, link=link)

    assert challenge.stdout.startswith("HTTP/1.1 401")
    assert 'resource="https://vault.azure.net"' in challenge.stdout and "AKV10000" in challenge.stdout
    assert refused.returncode != 0 and "error: 403" in refused.stderr, refused.stderr
    assert (served.returncode, served.stdout) == (0, "push-s3cret\n"), served.stderr
    statuses = [a.status for a in cloud.vault.accesses if a.client == AZURE_VM]
    assert statuses == [401, 403, 200], "anonymous challenge, refused once, then served"
    stranger = shell(f"azure_secret {VAULT} push-token not-my-identity", vm=AZURE_VM, ca=ca, cloud=cloud,
                     link=link)
    assert stranger.returncode != 0 and "error: 400" in stranger.stderr, "IMDS has no identity with that client id"
    wrong = shell(f'token=$(azure_token https://storage.azure.com/ {CLIENT_ID}); curl -sS -H "Authorization: Bearer '
                  f'$token" "https://{VAULT}.vault.azure.net/secrets/push-token?api-version=7.4"', vm=AZURE_VM, ca=ca,
                  cloud=cloud, link=link)
    assert "AKV10022: Invalid audience" in wrong.stdout, "a storage token does not open the vault"


@needs_root
def test_an_azure_vm_downloads_a_blob(ca: BoxCa, cloud: RunningGateway, link: RunningLinkLocal,
                                      tmp_path: Path) -> None:
    cloud.blob.put(ACCOUNT, "artifacts", OBJECT, ARTIFACT)

    done = shell(f"azure_blob {ACCOUNT} artifacts {OBJECT} {CLIENT_ID} w.tar.gz && sha256sum w.tar.gz",
                 vm=AZURE_VM, ca=ca, cloud=cloud, link=link, cwd=tmp_path)
    missing = shell(f"curl -sS -H 'x-ms-version: 2021-08-06' -H 'Authorization: Bearer t' "
                    f"https://{ACCOUNT}.blob.core.windows.net/artifacts/none", vm=AZURE_VM, ca=ca, cloud=cloud,
                    link=link)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == hashlib.sha256(ARTIFACT).hexdigest()
    assert "<Code>BlobNotFound</Code>" in missing.stdout


@needs_root
def test_the_gateway_serves_compute_and_arm_and_only_the_box_names(ca: BoxCa, cloud: RunningGateway,
                                                                   link: RunningLinkLocal) -> None:
    migs = shell("curl -sSf -X POST -H 'Content-Length: 0' https://compute.googleapis.com/compute/v1/projects/proj/"
                 "regions/europe-west1/instanceGroupManagers/api-mig/listManagedInstances", vm=GCE_VM, ca=ca,
                 cloud=cloud, link=link)
    vms = shell("curl -sSf 'https://management.azure.com/subscriptions/sub/resourceGroups/rg/providers/"
                "Microsoft.Compute/virtualMachineScaleSets/api/virtualMachines?api-version=2024-03-01'",
                vm=AZURE_VM, ca=ca, cloud=cloud, link=link)
    unfaked = subprocess.run(["curl", "-sS", "--cacert", str(ca.bundle_path), "--resolve",
                              f"login.microsoftonline.com:443:{GATEWAY}", "https://login.microsoftonline.com/t/"],
                             capture_output=True, text=True, timeout=60)
    untrusted = subprocess.run(["curl", "-sS", "--resolve", f"example.com:443:{GATEWAY}", "https://example.com/"],
                               capture_output=True, text=True, timeout=60)

    assert [m["name"] for m in json.loads(migs.stdout)["managedInstances"]] == ["api-7f3c"], migs.stderr
    assert [v["name"] for v in json.loads(vms.stdout)["value"]] == ["api_3"], vms.stderr
    assert "no fake answers for host 'login.microsoftonline.com'" in unfaked.stdout
    assert untrusted.returncode == 60, "a name outside the leaf's SANs fails verification"


def test_link_local_tells_vms_apart_by_source_address(link: RunningLinkLocal) -> None:
    def get(vm: str, path: str, header: str) -> tuple[str, str]:
        done = subprocess.run(["curl", "-sS", "--interface", vm, "-H", header, "-w", " %{http_code}",
                               f"{link.url}{path}"], capture_output=True, text=True, timeout=60)
        body, _, status = done.stdout.rpartition(" ")
        return status, body

    google, azure = "Metadata-Flavor: Google", "Metadata: true"
    compute = "/metadata/instance/compute?api-version=2021-02-01"
    assert get(GCE_VM, "/computeMetadata/v1/instance/name", google) == ("200", "api-7f3c")
    assert get(GCE_VM, "/computeMetadata/v1/instance/zone", google) == ("200",
                                                                        "projects/123456789012/zones/europe-west1-b")
    assert get(GCE_VM, "/computeMetadata/v1/instance/network-interfaces/0/ip", google) == ("200", GCE_VM)
    status, document = get(AZURE_VM, compute, azure)
    assert status == "200" and json.loads(document)["name"] == "api_3"
    assert json.loads(document)["osProfile"]["computerName"] == "api000003"
    status, user_data = get(AZURE_VM, "/metadata/instance/compute/userData?api-version=2021-01-01&format=text", azure)
    assert base64.b64decode(user_data) == b"#!/bin/bash\necho boot\n"
    assert get(GCE_VM, compute, azure)[0] == "404", "a GCE VM has no IMDS"
    assert get(OTHER_VM, "/computeMetadata/v1/instance/name", google)[0] == "404", "an address with no VM"

    link.add_gcp_vm(OTHER_VM, name="api-new", zone="europe-west1-c", project="proj", email="e@proj")
    assert get(OTHER_VM, "/computeMetadata/v1/instance/name", google) == ("200", "api-new")
    link.remove_vm(OTHER_VM)
    assert get(OTHER_VM, "/computeMetadata/v1/instance/name", google)[0] == "404", "the VM is gone"
    assert (OTHER_VM, "/computeMetadata/v1/instance/name") in link.strangers


def test_the_vms_of_a_scale_set_share_one_scheduled_events_document(link: RunningLinkLocal) -> None:
    events = "/metadata/scheduledevents?api-version=2020-07-01"

    def curl(vm: str, *args: str) -> str:
        done = subprocess.run(["curl", "-sSf", "--interface", vm, "-H", "Metadata: true", *args, link.url + events],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    event_id = link.scale_set_events("api").schedule("Terminate", ["api_3"], not_before_s=60)
    seen = [json.loads(curl(vm))["Events"] for vm in (AZURE_VM, AZURE_VM_2)]
    curl(AZURE_VM_2, "-X", "POST", "-d", json.dumps({"StartRequests": [{"EventId": event_id}]}))

    assert [[e["Resources"] for e in vm_events] for vm_events in seen] == [[["api_3"]], [["api_3"]]]
    assert [e["EventStatus"] for e in json.loads(curl(AZURE_VM))["Events"]] == ["Started"], \
        "approved by another VM of the scale set, as Azure allows"


def test_each_data_plane_fake_answers_its_documented_errors() -> None:
    bearer = {"Authorization": "Bearer t"}
    with threaded.serve(FakeSecretManager()) as secrets, threaded.serve(FakeStorage()) as storage, \
            threaded.serve(FakeKeyVault()) as vault, threaded.serve(FakeBlob()) as blob, httpx.Client() as http:
        anonymous = http.get(f"{secrets.url}/v1/projects/p/secrets/s/versions/latest:access")
        assert (anonymous.status_code, anonymous.json()["error"]["status"]) == (401, "UNAUTHENTICATED")

        storage.put("b", "a/b.tar.gz", b"xyz")
        storage.fail_next(1)
        storage.refuse_first(per_client=1)
        url = f"{storage.url}/storage/v1/b/b/o/a%2Fb.tar.gz"
        busy, refused, metadata = (http.get(url, headers=bearer) for _ in range(3))
        assert (busy.status_code, busy.json()["error"]["errors"][0]["reason"]) == (503, "backendError")
        assert (refused.status_code, refused.json()["error"]["errors"][0]["reason"]) == (403, "forbidden")
        assert (metadata.json()["name"], metadata.json()["size"]) == ("a/b.tar.gz", "3"), "no alt=media: metadata"

        vault_host = {"Host": "kv.vault.azure.net", **bearer}
        versionless = http.get(f"{vault.url}/secrets/s", headers=vault_host)
        unknown = http.get(f"{vault.url}/secrets/s?api-version=7.4", headers=vault_host)
        assert (versionless.status_code, versionless.json()["error"]["code"]) == (400, "BadParameter")
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "SecretNotFound")

        blob.put("acct", "artifacts", "w.tar.gz", b"xyz")
        blob_host = {"Host": "acct.blob.core.windows.net"}
        public = http.get(f"{blob.url}/artifacts/w.tar.gz", headers={**blob_host, "x-ms-version": "2021-08-06"})
        unversioned = http.get(f"{blob.url}/artifacts/w.tar.gz", headers={**blob_host, **bearer})
        served = http.get(f"{blob.url}/artifacts/w.tar.gz",
                           headers={**blob_host, **bearer, "x-ms-version": "2021-08-06"})
        assert (public.status_code, public.headers["x-ms-error-code"]) == (409, "PublicAccessNotPermitted")
        assert (unversioned.status_code, unversioned.headers["x-ms-error-code"]) == (400, "MissingRequiredHeader")
        assert (served.content, served.headers["x-ms-blob-type"]) == (b"xyz", "BlockBlob")
