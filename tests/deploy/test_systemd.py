"""The shipped systemd units (deploy/systemd/): valid for systemd, and they say what the design needs: the
agent's stop held by the drain, only CAP_NET_ADMIN, hardening, restart policies, a stop timeout above the hold."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from controller.agent.config import HoldConfig
from tests.e2e.programs import need
from tests.support import REPO_ROOT

UNITS = REPO_ROOT / "deploy" / "systemd"
DRAINCTL = Path(sys.executable).parent / "drainctl"


def unit(name: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / f"{name}.service")
    return {section: dict(parser[section]) for section in parser.sections()}


def test_systemd_accepts_both_units(tmp_path: Path) -> None:
    need("systemd-analyze")
    for name in ("drainctl-agent", "drainctl-controller"):
        text = (UNITS / f"{name}.service").read_text().replace("/opt/drainctl/bin/drainctl", str(DRAINCTL))
        (tmp_path / f"{name}.service").write_text(text)
    (tmp_path / "drainctl-api.service").write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(p) for p in sorted(tmp_path.glob("*.service")))],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "drainctl-" not in result.stderr, result.stderr


def test_the_agents_stop_is_held_by_the_drain_and_it_may_only_destroy_sockets() -> None:
    service, order = unit("drainctl-agent")["Service"], unit("drainctl-agent")["Unit"]
    assert "drainctl-api.service" in order["After"].split(), "stopped before the API server, which it drains"
    assert service["ExecStop"].endswith("agent hold --config /etc/drainctl/agent.yaml --only-at-shutdown")
    assert float(service["TimeoutStopSec"]) > HoldConfig().window_s, "the hold ends before systemd gives up"
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == "CAP_NET_ADMIN"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert "AF_NETLINK" in service["RestrictAddressFamilies"], "ss counts and destroys sockets over netlink"
    assert service["Restart"] == "always" and service["StateDirectory"] == "drainctl"


def test_the_controller_runs_with_no_capabilities_and_restarts() -> None:
    service = unit("drainctl-controller")["Service"]
    assert service["ExecStart"] == "/opt/drainctl/bin/drainctl run --config /etc/drainctl/controller.yaml"
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""
    assert service["Restart"] == "always" and service["NoNewPrivileges"] == "yes"
    assert "AF_NETLINK" not in service["RestrictAddressFamilies"]


def test_both_daemons_run_as_the_drainctl_user_report_readiness_and_do_not_loop_on_a_refused_config() -> None:
    for name in ("drainctl-agent", "drainctl-controller"):
        service = unit(name)["Service"]
        assert service["User"] == service["Group"] == "drainctl", f"{name}: a dedicated user, never root"
        assert service["Type"] == "notify" and service["NotifyAccess"] == "main", f"{name}: sd_notify READY=1"
        assert float(service["WatchdogSec"]) > 0, f"{name}: the event loop pings the watchdog"
        assert service["RestartPreventExitStatus"] == "2", f"{name}: a refused config (exit 2) is not retried"
