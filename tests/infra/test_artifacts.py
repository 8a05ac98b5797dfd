"""The VMs install what the stack ships: `make dist`'s wheelhouse, uploaded to private stores, fetched with each
VM's own identity, hash-checked and installed offline (issue 12, contract C1)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from controller.core.errors import ConfigError
from infra import artifacts, dist, scripts
from infra.azure.artifacts import STORAGE_BLOB_DATA_READER
from infra.config import StackConfig
from infra.mocks import OfflineRun, Recorded, run_offline
from infra.policy import validators
from tests.infra.conftest import parse_document, stack_document

Built = Callable[[str], tuple[StackConfig, OfflineRun]]
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
INSTANCE = "gcp:compute/instance:Instance"
VMSS = "azure-native:compute:VirtualMachineScaleSet"
VM = "azure-native:compute:VirtualMachine"


def _wheelhouse_sha256() -> str:
    return hashlib.sha256(dist.WHEELHOUSE.read_bytes()).hexdigest()


def _scripts(run: OfflineRun) -> dict[str, tuple[Recorded, str]]:
    """Every VM resource's rendered boot script."""
    scripts = {r.name: (r, r.inputs["metadataStartupScript"]) for r in run.of_type(TEMPLATE) + run.of_type(INSTANCE)}
    for scale_set in run.of_type(VMSS):
        custom_data = scale_set.inputs["virtualMachineProfile"]["osProfile"]["customData"]
        document = yaml.safe_load(base64.b64decode(custom_data))
        scripts[scale_set.name] = (scale_set, document["write_files"][0]["content"])
    for vm in run.of_type(VM):
        scripts[vm.name] = (vm, base64.b64decode(vm.inputs["userData"]).decode())
    return scripts


def test_the_wheelhouse_holds_the_wheel_and_every_locked_dependency() -> None:
    assert dist.WHEELHOUSE.exists(), "run `make dist` (make test does)"
    recorded, name = dist.WHEELHOUSE_SHA256.read_text().split()
    assert (recorded, name) == (_wheelhouse_sha256(), "wheelhouse.tar.gz")
    with tarfile.open(dist.WHEELHOUSE) as tar:
        names = tar.getnames()
    assert all(entry == "wheelhouse" or entry.startswith("wheelhouse/") for entry in names)
    wheels = {entry.removeprefix("wheelhouse/") for entry in names if entry.endswith(".whl")}
    assert dist.wheel_path().name in wheels
    locked = {line.split(" ")[0] for line in dist.LOCK.read_text().splitlines() if not line.startswith("#")}
    shipped = {re.sub(r"[-_.]+", "-", w.split("-")[0]).lower() + "==" + w.split("-")[1] for w in wheels}
    assert locked <= shipped, locked - shipped
    assert all(w.endswith(("-none-any.whl", "x86_64.whl")) and ("cp311" in w or "py3" in w or "abi3" in w)
               for w in wheels), wheels


def test_a_missing_wheelhouse_stops_the_plan_with_one_line_naming_make_dist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra import plan

    monkeypatch.setattr(artifacts, "WHEELHOUSE", tmp_path / "wheelhouse.tar.gz")
    monkeypatch.setattr(sys, "argv", ["plan", "staging"])
    with pytest.raises(SystemExit) as exit_info:
        plan.main()
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("drainctl plan: ") and "run `make dist` first" in line


def test_old_app_keys_and_a_wrong_app_hash_are_refused_with_one_line(tmp_path: Path) -> None:
    document = stack_document("staging")
    document["drainctl:app"]["drainctl_package"] = "drainctl==0.1.0"
    with pytest.raises(ConfigError, match=r"drainctl:app: drainctl_package was replaced by nothing: every VM"):
        parse_document(document)
    for server, says in (
        ({"command": "portal start"}, "command must start with an absolute path, got 'portal start'"),
        ({"command": "/opt/app/run", "artifact": "portal.tar.gz"}, "artifact and sha256 go together"),
    ):
        document = stack_document("staging")
        document["drainctl:app"]["server"] = server
        with pytest.raises(ConfigError, match=f"drainctl:app.server: {re.escape(says)}"):
            parse_document(document)
    archive = tmp_path / "portal.tar.gz"
    archive.write_bytes(b"not the expected bytes")
    document = stack_document("staging")
    document["drainctl:app"]["server"] = {"artifact": str(archive), "sha256": "0" * 64, "command": "/opt/app/run"}
    with pytest.raises(ConfigError, match=r"drainctl:app.server.artifact: .* has sha256 [0-9a-f]{64}, the stack says"):
        artifacts.load(parse_document(document).app.server)


def test_the_stores_are_private_and_only_the_fleet_and_the_controllers_read_them(built: Built) -> None:
    _, run = built("production")
    (bucket,) = run.of_type("gcp:storage/bucket:Bucket")
    assert bucket.inputs["name"] == "drainctl-production-drainctl-artifacts"
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    grants = run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    members = {(m.inputs["role"], m.inputs["member"]) for m in grants}
    assert members == {
        ("roles/storage.objectViewer", "serviceAccount:drainctl-api@mock.iam.gserviceaccount.com"),
        ("roles/storage.objectViewer", "serviceAccount:drainctl-controller@mock.iam.gserviceaccount.com"),
    }
    (account,) = run.of_type("azure-native:storage:StorageAccount")
    assert re.fullmatch(r"[a-z0-9]{3,24}", account.inputs["accountName"])
    assert account.inputs["allowBlobPublicAccess"] is False
    assert account.inputs["enableHttpsTrafficOnly"] is True
    assert account.inputs["minimumTlsVersion"] == "TLS1_2"
    (container,) = run.of_type("azure-native:storage:BlobContainer")
    assert container.inputs["publicAccess"] == "None"
    readers = [
        r for r in run.of_type("azure-native:authorization:RoleAssignment")
        if r.inputs["roleDefinitionId"].endswith(STORAGE_BLOB_DATA_READER)
    ]
    assert {r.inputs["principalId"] for r in readers} == {
        "principal-azure-identity-fleet", "principal-azure-identity-controller"
    }
    assert {r.inputs["scope"] for r in readers} == {f"{container.name}-id"}  # the container (its mock id), no wider


def test_every_vm_fetches_the_uploaded_wheelhouse_checks_its_hash_and_installs_offline(built: Built) -> None:
    _, run = built("production")
    sha = _wheelhouse_sha256()
    (gcp_object,) = run.of_type("gcp:storage/bucketObject:BucketObject")
    (blob,) = run.of_type("azure-native:storage:Blob")
    assert gcp_object.inputs["name"] == blob.inputs["blobName"] == f"drainctl/wheelhouse-{sha[:16]}.tar.gz"
    assert gcp_object.inputs["source"]["path"] == blob.inputs["source"]["path"] == str(dist.WHEELHOUSE)
    account = run.of_type("azure-native:storage:StorageAccount")[0].inputs["accountName"]
    scripts = _scripts(run)
    assert len(scripts) == 3 + 2 + 3 + 2  # templates, GCP controllers, scale sets, Azure controllers
    for name, (resource, script) in scripts.items():
        if resource.type.startswith("gcp:"):
            fetch = f"gcp_object drainctl-production-drainctl-artifacts {gcp_object.inputs['name']}"
        else:
            fetch = f"azure_blob {account} artifacts {blob.inputs['blobName']} client-azure-identity-"
        assert f"fetch_verified {sha} /var/lib/drainctl/wheelhouse-{sha[:16]}.tar.gz {fetch}" in script, name
        (install,) = [line for line in script.splitlines() if "pip install" in line]
        assert "--no-index --find-links /var/lib/drainctl/wheelhouse" in install, name
        assert "python3 -c 'import ensurepip'" in script, name  # not `venv --help`, which passes without it


def test_the_policy_pack_refuses_a_rendered_script_that_installs_drainctl_from_an_index(built: Built) -> None:
    _, run = built("production")
    template = run.of_type(TEMPLATE)[0]
    script = template.inputs["metadataStartupScript"]
    assert validators.offline_install(TEMPLATE, template.inputs, validators.Context()) == []
    by_name = re.sub(r"pip install [^\n]*", "pip install --quiet --upgrade drainctl==0.1.0", script)
    problems = validators.offline_install(TEMPLATE, {"metadataStartupScript": by_name}, validators.Context())
    assert any("installs by name from a package index" in problem for problem in problems), problems
    unchecked = re.sub(r"fetch_verified [0-9a-f]{64} (\S+) (gcp_object .*)", r"\2 \1", script)
    problems = validators.offline_install(TEMPLATE, {"metadataStartupScript": unchecked}, validators.Context())
    assert any("outside `fetch_verified <sha256>`" in problem for problem in problems), problems


def test_vms_are_created_after_the_artifacts_secrets_and_grants_they_read(built: Built) -> None:
    _, run = built("production")
    for name, (resource, _) in _scripts(run).items():
        reader = "controller" if "controller" in name else "fleet"
        cloud = resource.type.split(":")[0].replace("azure-native", "azure")
        needed = {f"{cloud}-artifacts-{_wheelhouse_sha256()[:16]}", f"{cloud}-artifacts-{reader}"}
        needed |= {f"{cloud}-identity-{secret}-{reader}" for secret in ("agent-token", "db-password")}
        if cloud == "gcp":
            needed |= {f"gcp-identity-{secret}-v" for secret in ("agent-token", "db-password")}
        assert needed <= resource.depends_on, (name, needed - resource.depends_on)


def test_an_app_server_artifact_is_uploaded_and_installed_under_opt_app(tmp_path: Path) -> None:
    archive = tmp_path / "portal.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("bin/portal")
        info.size, info.mode = 3, 0o755
        tar.addfile(info, io.BytesIO(b"#!\n"))
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    document = stack_document("staging")
    server = {"artifact": str(archive), "sha256": sha, "command": "/opt/app/bin/portal start"}
    document["drainctl:app"]["server"] = server
    run = run_offline(parse_document(document, stack="staging"))
    objects = {o.inputs["name"] for o in run.of_type("gcp:storage/bucketObject:BucketObject")}
    assert f"app/{sha[:16]}/portal.tar.gz" in objects
    (template,) = run.of_type(TEMPLATE)
    script = template.inputs["metadataStartupScript"]
    assert f"fetch_verified {sha} /var/lib/drainctl/portal.tar.gz gcp_object " in script
    assert "tar -xzf /var/lib/drainctl/portal.tar.gz -C /opt/app.new" in script
    assert "test -x /opt/app/bin/portal ||" in script
    assert "ExecStart=/opt/app/bin/portal start" in script


def _bash(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = "set -euo pipefail\n" + scripts.SHELL_FUNCTIONS + "\n" + body
    return subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)


def test_a_fetch_is_retried_until_it_succeeds_kept_only_with_its_hash_and_not_repeated(tmp_path: Path) -> None:
    payload = b"wheelhouse bytes\n"
    sha = hashlib.sha256(payload).hexdigest()
    flaky = (  # fails twice (like a grant not there yet), then writes the file it is given last
        'flaky() { n=$(cat tries 2>/dev/null || echo 0); echo $((n + 1)) > tries; '
        '[ "$n" -ge 2 ] && printf "wheelhouse bytes\\n" > "$1"; }\n'
    )
    ok = _bash(tmp_path, flaky + f"fetch_verified {sha} out.tar.gz flaky\nfetch_verified {sha} out.tar.gz flaky\n")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out.tar.gz").read_bytes() == payload
    assert (tmp_path / "tries").read_text().strip() == "3"  # two refusals, one success; the second call fetched nothing
    wrong = _bash(tmp_path, flaky + f"fetch_verified {'0' * 64} other.tar.gz flaky\n")
    assert wrong.returncode != 0
    assert "other.tar.gz: its sha256 is not the one this script was rendered with" in wrong.stderr
    assert not (tmp_path / "other.tar.gz").exists() and not (tmp_path / "other.tar.gz.part").exists()


def test_retry_gives_up_after_its_budget_naming_what_failed(tmp_path: Path) -> None:
    result = _bash(tmp_path, "retry 2 false never-works\n")
    assert result.returncode != 0
    assert re.search(r"drainctl: gave up after \d+ s: false never-works", result.stderr), result.stderr


def test_the_production_plan_shows_the_artifact_objects_their_stores_and_grants(built: Built) -> None:
    from rich.console import Console

    from infra import plan

    config, run = built("production")
    console = Console(width=400, record=True, highlight=False)
    console.print(plan._inventory(config, run))
    out = " ".join(console.export_text().split())
    object_name = f"drainctl/wheelhouse-{_wheelhouse_sha256()[:16]}.tar.gz"
    assert f"gcp:storage.BucketObject gcp-artifacts-{_wheelhouse_sha256()[:16]} global {object_name} <- " \
        "dist/wheelhouse.tar.gz" in out
    assert f"azure-native:storage.Blob azure-artifacts-{_wheelhouse_sha256()[:16]} centralus {object_name}" in out
    assert "uniform bucket-level access True, public access prevention enforced" in out
    assert "anonymous blob access False, HTTPS only True, TLS >= TLS1_2" in out
    assert "roles/storage.objectViewer -> serviceAccount:drainctl-api@mock.iam.gserviceaccount.com" in out
    assert "Storage Blob Data Reader on azure-artifacts-container-id -> principal-azure-identity-fleet" in out


FAKE_CURL = r"""
curl() {  # answers like the documented endpoints; records its command line and what came on stdin
  local out="" url="" arg previous=""
  for arg in "$@"; do
    [ "$previous" = "-o" ] && out=$arg
    case $arg in http*) url=$arg ;; esac
    previous=$arg
  done
  printf '%s\n' "$*" >> calls
  cat >> stdin_seen
  case $url in
    *computeMetadata*) echo '{"access_token": "tok-gcp", "expires_in": 3599, "token_type": "Bearer"}' ;;
    *secretmanager*) printf '{"name": "x", "payload": {"data": "%s"}}\n' "$(printf 's3cr3t value' | base64)" ;;
    *storage.googleapis.com*) printf 'object bytes' > "$out" ;;
    *169.254.169.254*) echo '{"access_token": "tok-azure", "token_type": "Bearer"}' ;;
    *vault.azure.net*) echo '{"value": "kv value", "id": "x"}' ;;
    *blob.core.windows.net*) printf 'blob bytes' > "$out" ;;
  esac
}
"""


def test_the_cloud_helpers_send_tokens_on_stdin_and_decode_what_the_apis_return(tmp_path: Path) -> None:
    """A unit test of the helpers' own requests and parsing (curl replaced by a recorder, as MockTransport would);
    the box runs them against the wire-level fakes."""
    body = FAKE_CURL + (
        "gcp_secret proj drainctl-agent-token > gcp.txt\n"
        "gcp_object bkt drainctl/wheelhouse-x.tar.gz obj.tar.gz\n"
        "azure_secret vault1 agent-token cid-1 > azure.txt\n"
        "azure_blob acct artifacts drainctl/wheelhouse-x.tar.gz cid-1 blob.tar.gz\n"
    )
    result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + scripts.SHELL_FUNCTIONS + body], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "gcp.txt").read_text() == "s3cr3t value\n"
    assert (tmp_path / "azure.txt").read_text() == "kv value\n"
    assert (tmp_path / "obj.tar.gz").read_text() == "object bytes"
    assert (tmp_path / "blob.tar.gz").read_text() == "blob bytes"
    calls = (tmp_path / "calls").read_text()
    assert "tok-" not in calls  # a bearer token never shows on a command line (/proc/*/cmdline)
    stdin = (tmp_path / "stdin_seen").read_text()
    assert "Authorization: Bearer tok-gcp" in stdin and "Authorization: Bearer tok-azure" in stdin
    assert "https://secretmanager.googleapis.com/v1/projects/proj/secrets/drainctl-agent-token/versions/latest:access" \
        in calls
    assert "https://storage.googleapis.com/storage/v1/b/bkt/o/drainctl%2Fwheelhouse-x.tar.gz?alt=media" in calls
    assert "resource=https://vault.azure.net --data-urlencode client_id=cid-1" in calls
    assert "resource=https://storage.azure.com/ --data-urlencode client_id=cid-1" in calls
    assert "x-ms-version: 2021-08-06" in calls
    assert "https://acct.blob.core.windows.net/artifacts/drainctl/wheelhouse-x.tar.gz" in calls
