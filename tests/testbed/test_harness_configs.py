"""The HAProxy and Prometheus configs the harness renders are valid for the real binaries and carry the budget."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controller.core.budget import Budget
from testbed.addresses import HostPort
from testbed.harness import haproxy, prometheus
from testbed.harness.haproxy import HealthCheck

SERVERS = [("A", HostPort("127.0.0.1", 41001)), ("B", HostPort("127.0.0.1", 41002))]


def _need(binary: str) -> str:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if not found:
        pytest.skip(f"{binary} is not installed (make setup installs it)")
    return found


def _haproxy_config(budget: Budget, health: HealthCheck | None = None) -> str:
    return haproxy.render_config(
        budget, SERVERS, frontend=HostPort("127.0.0.1", 41000), runtime_socket="drainctl-test", health=health
    )


def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(_haproxy_config(Budget()), encoding="utf-8")
    result = subprocess.run([_need("haproxy"), "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_idle_timeout_is_the_budgets_lb_idle_timeout() -> None:
    text = _haproxy_config(Budget(lb_idle_timeout_s=75.5))
    assert "    timeout tunnel 75500ms\n" in text


def test_haproxy_checks_readyz_and_forwards_the_client_ip() -> None:
    text = _haproxy_config(Budget(), HealthCheck(inter_ms=250, fall=3, rise=2, timeout_ms=700))
    assert "option httpchk GET /readyz" in text
    assert "http-check expect status 200" in text
    assert "default-server check inter 250ms fall 3 rise 2" in text
    assert "timeout check 700ms" in text
    assert "option forwardfor" in text
    assert "    server A 127.0.0.1:41001\n" in text and "    server B 127.0.0.1:41002\n" in text
    # A server marked down by its health check must keep its sockets: the drain, not HAProxy, closes them.
    assert "shutdown-sessions" not in text


def test_haproxy_health_checks_are_the_budgets_deregistration_timers() -> None:
    budget = Budget(lb_check_interval_s=0.3, lb_unhealthy_threshold=3, lb_check_timeout_s=0.25)
    text = _haproxy_config(budget)
    assert "default-server check inter 300ms fall 3 rise 1 downinter 300ms" in text
    assert "timeout check 250ms" in text


def test_haproxy_has_room_for_ten_thousand_sockets_when_the_fd_limit_allows() -> None:
    text = _haproxy_config(Budget())
    maxconns = [int(line.split()[1]) for line in text.splitlines() if line.strip().startswith("maxconn")]
    assert maxconns and min(maxconns) >= 10_000
    assert haproxy.fitting_maxconn(1_048_576) >= 10_000


def test_haproxy_maxconn_fits_a_low_open_files_limit() -> None:
    # HAProxy refuses to start when two descriptors per connection exceed the hard limit (20,000 in some
    # containers); the harness lowers maxconn instead.
    assert 9_000 <= haproxy.fitting_maxconn(20_000) <= 9_999


def test_prometheus_accepts_the_rendered_config(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus.render_config(SERVERS), encoding="utf-8")
    result = subprocess.run(
        [_need("promtool"), "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_each_server_every_second_with_its_name() -> None:
    config = yaml.safe_load(prometheus.render_config(SERVERS))
    (job,) = config["scrape_configs"]
    assert job["scrape_interval"] == "1s"
    targets = {group["labels"]["server"]: group["targets"] for group in job["static_configs"]}
    assert targets == {"A": ["127.0.0.1:41001"], "B": ["127.0.0.1:41002"]}


def test_haproxy_balances_by_least_connections_unless_told_to_pick_round_robin_like_a_cloud_lb() -> None:
    assert "    balance leastconn\n" in _haproxy_config(Budget())
    text = haproxy.render_config(Budget(), SERVERS, frontend=HostPort("127.0.0.1", 41000),
                                 runtime_socket="drainctl-test", balance="roundrobin")
    assert "    balance roundrobin\n" in text and "leastconn" not in text
