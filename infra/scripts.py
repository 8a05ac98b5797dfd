"""Boot scripts: what every VM installs and runs, rendered from the stack's typed config.

An API server gets the API server and the drainctl agent as systemd units; a controller VM gets `drainctl run`.
Secrets (agent, app admin, API and push tokens, database password) are never part of a script, the instance
metadata or custom data: the script fetches them at boot with the VM's own identity (GCP Secret Manager, Azure Key
Vault) into root-owned files only the daemons' group `drainctl` can read, and nothing echoes them
(no `set -x`). The policy pack checks that boot scripts carry no
secret values.

drainctl itself comes from the stack's own wheelhouse (`make dist`, uploaded by the stack, infra/artifacts.py):
the script fetches it with the VM's identity, keeps it only if its sha256 is the one rendered here, and installs
offline (`pip install --no-index`); no package index is ever asked. Every network call goes through `retry`
(bounded backoff), because the grants a VM reads through may be younger than the VM. The shell functions
(`SHELL_FUNCTIONS`) speak the clouds' documented REST endpoints with curl and parse JSON with the image's python3.

The agent's and the controller's units are the files in `deploy/systemd/`, written verbatim. Unit ordering
matters for the drain: the agent is ordered `After=` the API server, so on shutdown systemd stops the agent
first, and its stop is held (`drainctl agent hold`) until the API server's sockets are drained and verified, or
reset; only then is the API server stopped.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.core.budget import Budget
from infra.config import AppSettings, DatabaseSettings
from infra.rendered import (
    AGENT_TOKEN_FILE,
    API_TOKEN_FILE,
    APP_TOKEN_FILE,
    BOOT_VALUES,
    ETC,
    ONCALL_CONTEXTS,
    PUSH_TOKEN_FILE,
    TLS_ENV,
    agent_stop_timeout_s,
    oncall_contexts,
)

USER = "drainctl"
"""The system user the controller's and the agent's units run as (created by the boot script)."""
VENV = "/opt/drainctl"
DB_PASSWORD_FILE = f"{ETC}/db-password"
_EOF = "DRAINCTL_EOF"
UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
"""The units shipped in deploy/systemd/, installed as they are."""


@dataclass(frozen=True)
class SecretCommands:
    """Shell commands that print one secret each on stdout, run as root at boot."""

    agent_token: str
    app_admin_token: str
    db_password: str
    api_token: str
    """The controllers' API token (controllers only)."""
    push_token: str
    """The token agents push notices to the controllers with (both roles)."""


@dataclass(frozen=True)
class DatabaseHosts:
    write_host: str
    read_host: str


def gcp_secret(project: str, secret_id: str) -> str:
    """Read a Secret Manager secret with the VM's service account (`gcp_secret` is defined by the preamble: the
    REST API with the metadata server's token; no gcloud needed)."""
    return f"gcp_secret {shlex.quote(project)} {shlex.quote(secret_id)}"


def azure_secret(vault_name: str, secret_name: str, client_id: str) -> str:
    """Read a Key Vault secret with the VM's user-assigned identity (`azure_secret` is defined by the preamble)."""
    return f"azure_secret {shlex.quote(vault_name)} {shlex.quote(secret_name)} {shlex.quote(client_id)}"


@dataclass(frozen=True)
class ArtifactFetch:
    """One artifact as a VM fetches it: the preamble function call that writes it (its output path appended), the
    sha256 rendered into the script, and the local file name."""

    command: str
    sha256: str
    file_name: str


def gcp_artifact(bucket: str, object_name: str, sha256: str) -> ArtifactFetch:
    """An object of the stack's bucket, read with the VM's service account (`gcp_object`)."""
    return ArtifactFetch(
        command=f"gcp_object {shlex.quote(bucket)} {shlex.quote(object_name)}",
        sha256=sha256,
        file_name=object_name.rpartition("/")[2],
    )


def azure_artifact(account: str, container: str, blob: str, client_id: str, sha256: str) -> ArtifactFetch:
    """A blob of the stack's container, read with the VM's user-assigned identity (`azure_blob`)."""
    return ArtifactFetch(
        command=f"azure_blob {shlex.quote(account)} {shlex.quote(container)} {shlex.quote(blob)} "
        f"{shlex.quote(client_id)}",
        sha256=sha256,
        file_name=blob.rpartition("/")[2],
    )


@dataclass(frozen=True)
class Install:
    """What a VM installs before its units: the wheelhouse (always) and the app server's archive (if any)."""

    wheelhouse: ArtifactFetch
    extras: str = ""
    """drainctl's extras for this host (`postgres,gcp` on a GCP controller; none on an API server)."""
    app: ArtifactFetch | None = None


TLS_PEM = f"{ETC}/tls.pem"


def tls_terminator(budget: Budget, app: AppSettings, fetch_certificate: str) -> str:
    """Azure's TLS termination on the VM: the Standard LB is L4, so HAProxy (Debian package, signed archive)
    terminates TLS on `tls_port` with the certificate from Key Vault and proxies to the app port on loopback.

    Its timeouts equal the LB's idle timeout (an idle WebSocket is cut by the LB first, with a TCP reset), and a
    drop-in orders it `Before=` the API server and the agent, so at shutdown systemd stops it last: the drain's
    sockets are not cut by the proxy's stop. Health probes stay on the plain app port."""
    idle = f"{budget.lb_idle_timeout_s:g}s"
    config = "\n".join(
        [
            "global",
            "  log /dev/log local0",
            "defaults",
            "  mode http",
            "  log global",
            "  timeout connect 5s",
            f"  timeout client {idle}",
            f"  timeout server {idle}",
            f"  timeout tunnel {idle}",
            "  timeout client-fin 5s",
            "frontend wss",
            f"  bind :{app.tls_port} ssl crt {TLS_PEM} alpn http/1.1",
            "  option forwardfor",
            "  default_backend app",
            "backend app",
            f"  server app 127.0.0.1:{app.app_port}",
        ]
    )
    return "\n".join(
        [
            f"command -v haproxy >/dev/null || retry {FETCH_BUDGET_S} apt_install haproxy",
            _fetch(TLS_PEM, fetch_certificate),
            f"cat > /etc/haproxy/haproxy.cfg <<'{_EOF}'\n{config}\n{_EOF}",
            "install -d /etc/systemd/system/haproxy.service.d",
            f"cat > /etc/systemd/system/haproxy.service.d/drainctl.conf <<'{_EOF}'\n[Unit]\n"
            f"Before=drainctl-api.service drainctl-agent.service\n{_EOF}",
        ]
    )


def api_server_script(
    budget: Budget,
    app: AppSettings,
    database: DatabaseSettings,
    hosts: DatabaseHosts,
    secrets: SecretCommands,
    *,
    platform: str,
    agent: Mapping[str, Any],
    install: Install,
    tls_certificate: str | None = None,
) -> str:
    """The API server's boot script: API server + agent as systemd units. `platform` (`gcp` or `azure`) is
    the notices the agent watches: GCE metadata (preempted, maintenance-event) or IMDS scheduled events.
    `agent`: its agent.yaml (infra/rendered.py). `install`: the artifacts to fetch and install offline
    (infra/artifacts.py). `tls_certificate` (Azure): the command printing the TLS PEM; the VM then terminates
    TLS itself."""
    stop_s = budget.drain_deadline_s + budget.verify_s + budget.margin_s
    return "\n".join(
        [
            _preamble(),
            _install(install),
            _app_server(install, app.server.command),
            _fetch(AGENT_TOKEN_FILE, secrets.agent_token),
            _fetch(APP_TOKEN_FILE, secrets.app_admin_token),
            _fetch(DB_PASSWORD_FILE, secrets.db_password),
            _fetch(PUSH_TOKEN_FILE, secrets.push_token),
            _env_file(f"{ETC}/database.env", {**_database_env(database, hosts), **TLS_ENV}),
            _env_file(f"{ETC}/agent.env", TLS_ENV),
            # The agent's instance name, its address: known only at boot (infra/rendered.py BOOT_VALUES).
            *_boot_values(agent),
            f"cat > {ETC}/agent.yaml <<{_EOF}\n{_yaml(agent, expanded=True)}{_EOF}",
            _unit(
                "drainctl-api",
                description="API server (WebSockets, /healthz, /readyz, /metrics)",
                exec_start=app.server.command,
                extra=[f"EnvironmentFile={ETC}/database.env", f"TimeoutStopSec={stop_s:g}"],
            ),
            _unit_file("drainctl-agent", stop_timeout_s=agent_stop_timeout_s(budget)),
            *([tls_terminator(budget, app, tls_certificate)] if tls_certificate else []),
            "systemctl daemon-reload",
            "systemctl enable --now drainctl-agent.service drainctl-api.service",
            *(["systemctl enable haproxy.service", "systemctl restart haproxy.service"] if tls_certificate else []),
            "",
        ]
    )


def controller_script(
    budget: Budget,
    app: AppSettings,
    database: DatabaseSettings,
    write_host: str,
    controller: Mapping[str, Any],
    secrets: SecretCommands,
    *,
    install: Install,
) -> str:
    """A controller VM's boot script: `drainctl run` under systemd; the journal's leader lease picks the active
    one. `controller`: its controller.yaml (infra/rendered.py, this cloud's settings only)."""
    env = {
        "PGHOST": write_host,
        "PGDATABASE": database.name,
        "PGUSER": database.user,
        "PGPASSFILE": f"{ETC}/pgpass",
        "DRAINCTL_AGENT_TOKEN_FILE": AGENT_TOKEN_FILE,
        **TLS_ENV,
    }
    return "\n".join(
        [
            _preamble(),
            _install(install),
            _fetch(AGENT_TOKEN_FILE, secrets.agent_token),
            _fetch(DB_PASSWORD_FILE, secrets.db_password),
            _fetch(API_TOKEN_FILE, secrets.api_token),
            _fetch(PUSH_TOKEN_FILE, secrets.push_token),
            # libpq's password file: host:port:database:user:password, built on the host from the fetched secret
            # (any database: the journal's is the pair's own, infra/rendered.py journal_database).
            f'(umask 077; printf "%s:5432:%s:%s:%s\\n" {shlex.quote(write_host)} \'*\' '
            f'{shlex.quote(database.user)} "$(cat {DB_PASSWORD_FILE})" > {ETC}/pgpass && chown {USER}: {ETC}/pgpass)',
            _env_file(f"{ETC}/controller.env", env),
            *_boot_values(controller),
            f"cat > {ETC}/controller.yaml <<{_EOF}\n{_yaml(controller, expanded=True)}{_EOF}",
            f"cat > {ONCALL_CONTEXTS} <<'{_EOF}'\n{_yaml(oncall_contexts(controller))}{_EOF}",
            _unit_file("drainctl-controller"),
            "systemctl daemon-reload",
            "systemctl enable --now drainctl-controller.service",
            "",
        ]
    )


def cloud_init(script: str) -> str:
    """Azure custom data (base64 of a cloud-config that writes the boot script and runs it)."""
    config = {
        "write_files": [{"path": "/var/lib/drainctl/boot.sh", "permissions": "0700", "content": script}],
        "runcmd": [["/var/lib/drainctl/boot.sh"]],
    }
    document = "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return base64.b64encode(document.encode()).decode()


RENDERED_MARKER = "# drainctl boot script, rendered by infra/scripts.py."
"""The first comment of every rendered boot script (the policy pack looks for it in immutable inputs)."""
BOOT_RUNNER = "/usr/local/sbin/drainctl-boot"
IMDS_USER_DATA = "http://169.254.169.254/metadata/instance/compute/userData?api-version=2021-01-01&format=text"
"""IMDS serves the VM's userData base64-encoded (https://learn.microsoft.com/azure/virtual-machines/user-data)."""

_BOOT_RUNNER_SCRIPT = f"""#!/bin/bash
# drainctl: run this VM's current userData (the rendered boot script) on every boot. Installed once by customData.
set -euo pipefail
install -d -m 0700 /var/lib/drainctl
curl -sSf --retry 10 --retry-connrefused -H Metadata:true "{IMDS_USER_DATA}" | base64 -d > /var/lib/drainctl/boot.sh.new
chmod 0700 /var/lib/drainctl/boot.sh.new
mv /var/lib/drainctl/boot.sh.new /var/lib/drainctl/boot.sh
exec /var/lib/drainctl/boot.sh
"""

_BOOT_RUNNER_UNIT = f"""[Unit]
Description=drainctl boot script from the VM's userData (re-read on every boot)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={BOOT_RUNNER}
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""


def vm_bootstrap() -> str:
    """Azure VM custom data that never changes: a cloud-config installing a unit that runs userData every boot.

    `osProfile.customData` of a VM cannot change after creation (ARM 409 PropertyChangeNotAllowed); `userData`
    can. So the rendered script travels in userData and this constant stub, the only customData, fetches it from
    IMDS at each boot: a changed budget, setting or package is an in-place update, applied at the next reboot.
    Sources: https://learn.microsoft.com/azure/virtual-machines/user-data,
    https://learn.microsoft.com/azure/virtual-machines/custom-data.
    """
    config = {
        "write_files": [
            {"path": BOOT_RUNNER, "permissions": "0700", "content": _BOOT_RUNNER_SCRIPT},
            {"path": "/etc/systemd/system/drainctl-boot.service", "permissions": "0644", "content": _BOOT_RUNNER_UNIT},
        ],
        "runcmd": [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "drainctl-boot.service"]],
    }
    document = "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return base64.b64encode(document.encode()).decode()


def boot_runner_script() -> str:
    """The runner `vm_bootstrap` installs (for shellcheck)."""
    return _BOOT_RUNNER_SCRIPT


def user_data(script: str) -> str:
    """Azure VM userData: the boot script, base64 (the API requires it encoded)."""
    return base64.b64encode(script.encode()).decode()


FETCH_BUDGET_S = 600
"""How long a boot keeps retrying one fetch (a secret, an artifact, a package): the grants a VM reads through may
be minutes younger than the VM (IAM is eventually consistent; the first answer is often 403)."""
WHEELHOUSE_DIR = "/var/lib/drainctl/wheelhouse"
APP_DIR = "/opt/app"
GCP_METADATA = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
GCP_SECRETS = "https://secretmanager.googleapis.com/v1/projects"
GCP_STORAGE = "https://storage.googleapis.com/storage/v1/b"
AZURE_IMDS_TOKEN = "http://169.254.169.254/metadata/identity/oauth2/token"
AZURE_BLOB_VERSION = "2021-08-06"

_LIMITS = "--connect-timeout 10 --max-time 60"
_OBJECT_LIMITS = "--connect-timeout 10 --max-time 900"
"""No single attempt hangs: curl's own connect timeout is 300 s and it has no total limit (retry bounds the sum)."""
_JSON = "python3 -c 'import json, sys; print(json.load(sys.stdin)"
"""The preamble parses JSON with the image's python3 (every Debian image has it; jq is not installed)."""

# Bearer tokens go to curl on stdin (`-H @-`), never on its command line (readable by any local user in /proc).
SHELL_FUNCTIONS = f"""\
retry() {{  # max_seconds, command...: 1 s backoff doubling to 15 s; the arguments name things, never secrets
  local budget=$1 delay=1 start=$SECONDS
  shift
  until "$@"; do
    if (( SECONDS - start + delay > budget )); then
      echo "drainctl: gave up after $((SECONDS - start)) s: $*" >&2
      return 1
    fi
    sleep "$delay"
    delay=$(( delay * 2 > 15 ? 15 : delay * 2 ))
  done
}}
gcp_token() {{  # -> an access token of the VM's service account (metadata server)
  curl -sSf {_LIMITS} -H 'Metadata-Flavor: Google' "{GCP_METADATA}" \\
    | {_JSON}["access_token"])'
}}
gcp_secret() {{  # project, secret id -> the secret's latest version on stdout (Secret Manager REST API)
  local token value
  token=$(gcp_token) || return 1
  value=$(curl -sSf {_LIMITS} -H @- "{GCP_SECRETS}/$1/secrets/$2/versions/latest:access" \\
    <<<"Authorization: Bearer $token" \\
    | {_JSON}["payload"]["data"])') || return 1
  value=$(base64 -d <<<"$value") || return 1
  printf '%s\\n' "$value"
}}
gcp_object() {{  # bucket, object name, output file (Cloud Storage JSON API, alt=media)
  local token name
  token=$(gcp_token) || return 1
  name=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$2") || return 1
  curl -sSf {_OBJECT_LIMITS} -o "$3" -H @- "{GCP_STORAGE}/$1/o/$name?alt=media" <<<"Authorization: Bearer $token"
}}
azure_token() {{  # resource, identity client id -> an access token of that user-assigned identity (IMDS)
  curl -sSf {_LIMITS} -H Metadata:true -G "{AZURE_IMDS_TOKEN}" --data-urlencode api-version=2018-02-01 \\
    --data-urlencode "resource=$1" --data-urlencode "client_id=$2" \\
    | {_JSON}["access_token"])'
}}
azure_secret() {{  # vault, secret name, identity client id -> the secret's value on stdout (Key Vault)
  local token value
  token=$(azure_token https://vault.azure.net "$3") || return 1
  value=$(curl -sSf {_LIMITS} -H @- "https://$1.vault.azure.net/secrets/$2?api-version=7.4" \\
    <<<"Authorization: Bearer $token" \\
    | {_JSON}["value"])') || return 1
  printf '%s\\n' "$value"
}}
azure_blob() {{  # account, container, blob, identity client id, output file (Blob service, Entra token)
  local token
  token=$(azure_token https://storage.azure.com/ "$4") || return 1
  curl -sSf {_OBJECT_LIMITS} -o "$5" -H 'x-ms-version: {AZURE_BLOB_VERSION}' -H @- \\
    "https://$1.blob.core.windows.net/$2/$3" \\
    <<<"Authorization: Bearer $token"
}}
fetch_verified() {{  # sha256, output file, fetch command... (given the output path last): kept only if the hash matches
  local sha=$1 out=$2
  shift 2
  if [ -f "$out" ] && printf '%s  %s\\n' "$sha" "$out" | sha256sum -c --status; then return 0; fi
  retry {FETCH_BUDGET_S} "$@" "$out.part" || return 1
  if ! printf '%s  %s\\n' "$sha" "$out.part" | sha256sum -c --status; then
    rm -f "$out.part"
    echo "drainctl: $out: its sha256 is not the one this script was rendered with ($sha)" >&2
    return 1
  fi
  mv "$out.part" "$out"
}}
apt_install() {{  # Debian packages, from the image's signed archive
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}}"""


def _preamble() -> str:
    return "\n".join(
        [
            "#!/bin/bash",
            f"{RENDERED_MARKER} Idempotent; never echoes secrets (no set -x).",
            "set -euo pipefail",
            SHELL_FUNCTIONS,
            # The daemons' system user: the units run as `drainctl` (deploy/systemd/), never as root.
            f"id -u {USER} >/dev/null 2>&1 || useradd --system --user-group --no-create-home "
            f"--home-dir /nonexistent --shell /usr/sbin/nologin {USER}",
            f"install -d -m 0750 -g {USER} {ETC}",
            "install -d -m 0700 /var/lib/drainctl",
        ]
    )


def _install(install: Install) -> str:
    """The wheelhouse, fetched and checked, then drainctl from it alone (`--no-index`): no package index is asked,
    so nobody who registers a name there can run code on the fleet. Skipped when this wheelhouse is installed."""
    wheelhouse = install.wheelhouse
    archive = f"/var/lib/drainctl/{wheelhouse.file_name}"
    requirement = f"drainctl[{install.extras}]" if install.extras else "drainctl"
    stamp = f"{VENV}/.wheelhouse.sha256"
    return "\n".join(
        [
            f"fetch_verified {wheelhouse.sha256} {archive} {wheelhouse.command}",
            # Debian splits ensurepip out of python3 (package python3-venv): `venv --help` works without it.
            "python3 -c 'import ensurepip' >/dev/null 2>&1 || retry "
            f"{FETCH_BUDGET_S} apt_install python3-venv",
            f'if [ "$(cat {stamp} 2>/dev/null)" != {wheelhouse.sha256} ]; then',
            f"  rm -rf {WHEELHOUSE_DIR} && tar -xzf {archive} -C /var/lib/drainctl",
            f"  test -x {VENV}/bin/pip || python3 -m venv {VENV}",
            f"  {VENV}/bin/pip install --quiet --no-index --find-links {WHEELHOUSE_DIR} --force-reinstall "
            f"{shlex.quote(requirement)}",
            f"  echo {wheelhouse.sha256} > {stamp}",
            "fi",
        ]
    )


def _app_server(install: Install, command: str) -> str:
    """The app server's archive (if the stack ships one) into /opt/app, then a check that its command runs here."""
    executable = shlex.split(command)[0]
    lines = []
    if install.app is not None:
        app = install.app
        archive = f"/var/lib/drainctl/{app.file_name}"
        lines += [
            f"fetch_verified {app.sha256} {archive} {app.command}",
            f'if [ "$(cat {APP_DIR}/.sha256 2>/dev/null)" != {app.sha256} ]; then',
            f"  rm -rf {APP_DIR}.new && install -d {APP_DIR}.new && tar -xzf {archive} -C {APP_DIR}.new",
            f"  echo {app.sha256} > {APP_DIR}.new/.sha256 && rm -rf {APP_DIR} && mv {APP_DIR}.new {APP_DIR}",
            "fi",
        ]
    message = f"drainctl: the API server {executable} (drainctl:app.server.command) is not an executable file here"
    lines.append(f"test -x {shlex.quote(executable)} || {{ echo {shlex.quote(message)} >&2; exit 1; }}")
    return "\n".join(lines)


def _fetch(path: str, command: str) -> str:
    """Root-owned, readable by the daemons' group only (mode 0640), replaced atomically; retried, because the
    grant that allows the read may not exist yet when the VM boots."""
    return (
        f"(umask 027; retry {FETCH_BUDGET_S} {command} > {path}.new && chgrp {USER} {path}.new "
        f"&& mv {path}.new {path})"
    )


def _database_env(database: DatabaseSettings, hosts: DatabaseHosts) -> dict[str, str]:
    return {
        "DATABASE_WRITE_HOST": hosts.write_host,
        "DATABASE_READ_HOST": hosts.read_host,
        "DATABASE_NAME": database.name,
        "DATABASE_USER": database.user,
        "DATABASE_PASSWORD_FILE": DB_PASSWORD_FILE,
    }


def _env_file(path: str, values: Mapping[str, str]) -> str:
    body = "".join(f"{key}={value}\n" for key, value in values.items())
    return f"cat > {path} <<'{_EOF}'\n{body}{_EOF}"


def _unit_file(name: str, *, stop_timeout_s: float | None = None) -> str:
    """A unit of deploy/systemd/ (which uses the same paths: /opt/drainctl, /etc/drainctl), as a here-document.

    `stop_timeout_s` replaces its one `TimeoutStopSec=` line (the agent's, derived from the budget): substituted
    in the unit rather than a drop-in, so the one file on the VM says what systemd does at shutdown."""
    text = (UNITS / f"{name}.service").read_text(encoding="utf-8")
    if stop_timeout_s is not None:
        text, count = re.subn(r"(?m)^TimeoutStopSec=.*$", f"TimeoutStopSec={stop_timeout_s:g}", text)
        if count != 1:
            raise ValueError(f"{name}.service must have exactly one TimeoutStopSec= line, has {count}")
    if _EOF in text:
        raise ValueError(f"{name}.service must not contain {_EOF}: it ends the here-document")
    return f"cat > /etc/systemd/system/{name}.service <<'{_EOF}'\n{text.rstrip()}\n{_EOF}"


def _unit(name: str, *, description: str, exec_start: str, extra: list[str], before: str | None = None) -> str:
    order = [f"Before={before}"] if before else []
    lines = [
        "[Unit]",
        f"Description={description}",
        "Wants=network-online.target",
        "After=network-online.target",
        *order,
        "",
        "[Service]",
        f"ExecStart={exec_start}",
        "Restart=always",
        "RestartSec=2",
        *extra,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return f"cat > /etc/systemd/system/{name}.service <<'{_EOF}'\n" + "\n".join(lines) + f"\n{_EOF}"


_BOOT_VALUE = re.compile(r"\$(" + "|".join(BOOT_VALUES) + r")\b")


def _boot_values(config: Mapping[str, Any]) -> list[str]:
    """Shell assignments of the values known only on the VM that `config` names (a failed command stops the
    script: set -e)."""
    text = _yaml(config)
    return [f"{name}=$({command})" for name, command in BOOT_VALUES.items() if re.search(rf"\${name}\b", text)]


def _yaml(value: Any, *, expanded: bool = False) -> str:
    """YAML for a here-document; `expanded` ones (unquoted delimiter) hold no shell metacharacters but the
    boot values (`$vm_host`, ...: infra/rendered.py)."""
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False)
    if expanded and any(char in _BOOT_VALUE.sub("", text) for char in "$`\\"):
        raise ValueError("this YAML must not contain $, ` or \\: the shell expands its here-document")
    if _EOF in text:
        raise ValueError(f"this YAML must not contain {_EOF}: it ends the here-document")
    return text
