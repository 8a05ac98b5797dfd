"""`drainctl agent --config agent.yaml` (run the agent) and `drainctl agent hold --config agent.yaml` (the
guest's shutdown hold, the ExecStop of the agent's systemd unit; with `--notice-id POD_UID`, the preStop hook of
Kubernetes' `hold: prestop`): parse the config at the edge, then act."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from controller.agent.config import AgentConfig, AgentSettings, load_settings
from controller.core.errors import ConfigError, PermanentError
from controller.core.http import HttpErrors, bearer, client
from controller.core.logs import LogFormat, LogLevel
from controller.core.settings import HostPort

ConfigOption = Annotated[Path, typer.Option("--config", help="The agent's YAML config (see docs/agent.md).")]

agent = typer.Typer(
    name="agent", invoke_without_command=True, no_args_is_help=False, pretty_exceptions_enable=False,
    help="The node agent: drain, count and reset this host's sockets; local fallback on platform notices.",
)


@agent.callback()
def run(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="The agent's YAML config (see docs/agent.md).")]
    = None,
    log_format: Annotated[LogFormat | None, typer.Option("--log-format", help="text or json (default: log.format "
                                                         "of the config, else text).")] = None,
    log_level: Annotated[LogLevel | None, typer.Option("--log-level", help="debug, info, warning or error "
                                                       "(default: log.level of the config, else info).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the config and its token files and exit (0 and "
                                        "`ok`, or one line and 2); start nothing.")] = False,
) -> None:
    """Run the node agent (`drainctl agent --config agent.yaml`; `--check`: only validate it)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise ConfigError("agent: --config PATH is required (the agent's YAML config, see docs/agent.md)")
    settings = load_settings(config)
    if check:
        print("ok")
        return
    from controller.agent.serving import serve

    log = settings.config.log
    serve(settings, log=log.model_copy(update={k: v for k, v in (("format", log_format), ("level", log_level)) if v}))


@agent.command("hold")
def hold(
    config: ConfigOption,
    window_s: Annotated[float | None, typer.Option("--window-s", help="Hold at most this long (default: "
                                                   "hold.window_s of the config).", min=0.001)] = None,
    only_at_shutdown: Annotated[bool, typer.Option("--only-at-shutdown", help="Hold only while systemd is shutting "
                                                   "the system down (not on a plain restart of the agent).")] = False,
    agent_url: Annotated[str | None, typer.Option("--agent-url", help="The agent's base URL (default: from "
                                                  "`listen` of the config).")] = None,
    notice_id: Annotated[str | None, typer.Option("--notice-id", help="Open this notice (Kubernetes preStop: the "
                                                  "pod uid) and wait for its release alone; it is due at the end "
                                                  "of the window.")] = None,
) -> None:
    """Block until this host's drain is verified or forced (every open notice released), at most the window."""
    if notice_id is not None and not notice_id.strip():
        raise ConfigError("agent hold: --notice-id is empty (in a preStop hook: is POD_UID set from metadata.uid?)")
    settings = load_settings(config)
    if only_at_shutdown and not _shutting_down():
        print("drainctl: the system is not shutting down; not holding", file=sys.stderr)
        return
    result = request_hold(settings, window_s, agent_url=agent_url, notice_id=notice_id)
    print(json.dumps(result), flush=True)
    if result.get("outcome") not in ("released", "no-agent"):
        raise typer.Exit(1)


def request_hold(
    settings: AgentSettings, window_s: float | None, *, agent_url: str | None = None, notice_id: str | None = None
) -> dict[str, object]:
    """`POST /v1/shutdown-hold` on the local agent; `{"outcome": "no-agent"}` when no agent answers."""
    url = f"{(agent_url or _local_url(settings.config)).rstrip('/')}/v1/shutdown-hold"
    window = window_s if window_s is not None else settings.config.hold.window_s
    body: dict[str, object] = {"window_s": window}
    if notice_id is not None:
        body["notice_id"] = notice_id
    with client(headers=bearer(settings.token), timeout=window + 30.0) as http:
        try:
            response = http.post(url, json=body)
        except httpx.ConnectError:
            print(f"drainctl: no agent answers at {url}; nothing to hold", file=sys.stderr)
            return {"outcome": "no-agent"}
        except httpx.TransportError as exc:
            raise _HOLD_ERRORS.from_transport(exc, "POST /v1/shutdown-hold") from exc
    answer: dict[str, object] = _HOLD_ERRORS.check(response, "POST /v1/shutdown-hold").json()
    return answer


_HOLD_ERRORS = HttpErrors("agent hold", unavailable=PermanentError, credentials_text="{where}: HTTP {status}: {reason}",
                          status_text="{where}: HTTP {status}: {reason}")
"""Any answer but a 2xx is a PermanentError (exit 1), a connection that breaks or times out a TemporaryError."""


def _local_url(config: AgentConfig) -> str:
    """The agent's own API, as this host reaches it (a wildcard listen address is reached on loopback)."""
    if config.listen_port == 0:
        raise ConfigError("agent hold: listen has port 0 in the config; give --agent-url")
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
    return f"http://{HostPort(loopback.get(config.listen_host, config.listen_host), config.listen_port)}"


def _shutting_down() -> bool:
    """systemd's own word: `systemctl is-system-running` says `stopping` during a shutdown."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return True  # not systemd: cannot tell a restart from a shutdown, so hold
    state = subprocess.run([systemctl, "is-system-running"], capture_output=True, text=True, timeout=10, check=False)
    return state.stdout.strip() == "stopping"
