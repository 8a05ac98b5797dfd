"""Verification through a real Prometheus: the open-socket query per instance, staleness, and our errors.

A real `prometheus` (Debian package) scrapes a prometheus-client endpoint standing in for a server's
`/metrics` every second; the controller's client asks it the configured query.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from controller.config import PrometheusConfig
from controller.prometheus import PrometheusClient, PrometheusGauge, PrometheusQueryError, PrometheusUnavailable
from testbed.harness.controllers import SOCKET_QUERY
from tests.support import wait_until


@dataclass
class Target:
    gauge: Gauge
    stop: Callable[[], None]


@dataclass
class Running:
    url: str
    target: Target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("prometheus")
    registry = CollectorRegistry()
    gauge = Gauge("drainctl_testbed_open_sockets", "open sockets", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    stopped = False

    def stop_target() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "testbed",
            "static_configs": [{"targets": [f"127.0.0.1:{server.server_port}"], "labels": {"server": "A"}}],
        }],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    process: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # the free port may be taken between our probe and Prometheus's bind
            port = _free_port()
            log = (workdir / "prometheus.log").open("wb")
            process = subprocess.Popen(
                ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
            log.close()
            url = f"http://127.0.0.1:{port}"
            if _ready(url, process):
                break
            process.kill()
            process.wait(timeout=30)
            process = None
        if process is None:
            pytest.fail("prometheus did not start: " + (workdir / "prometheus.log").read_text()[-2000:])
        yield Running(url, Target(gauge, stop_target))
    finally:
        stop_target()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/-/ready", timeout=2, trust_env=False).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # poll interval; readiness decides
    return False


def _open_sockets(url: str, instance: str) -> int | None:
    async def ask() -> int | None:
        client = PrometheusClient(url, timeout_s=5)
        try:
            return await PrometheusGauge(client, PrometheusConfig(url=url, query=SOCKET_QUERY)).open_sockets(instance)
        finally:
            client.close()

    return asyncio.run(ask())


def test_the_testbeds_query_reads_one_instances_open_sockets_and_goes_stale_when_it_stops(
    prometheus: Running,
) -> None:
    prometheus.target.gauge.set(7)
    wait_until(lambda: _open_sockets(prometheus.url, "A") == 7, what="7 sockets")
    assert _open_sockets(prometheus.url, "B") is None, "another instance's series must not count"
    assert _open_sockets(prometheus.url, 'A"} or vector(1) or {x="') is None, "the instance name is escaped"

    prometheus.target.gauge.set(0)
    wait_until(lambda: _open_sockets(prometheus.url, "A") == 0, what="zero sockets")

    prometheus.target.stop()  # the server stops answering scrapes: its series goes stale
    wait_until(lambda: _open_sockets(prometheus.url, "A") is None, what="a stale series")


def test_a_malformed_query_is_a_permanent_error(prometheus: Running) -> None:
    async def ask() -> None:
        client = PrometheusClient(prometheus.url)
        try:
            await client.value("sum(")
        finally:
            client.close()

    with pytest.raises(PrometheusQueryError, match="refused"):
        asyncio.run(ask())


def test_an_unreachable_prometheus_is_a_temporary_error() -> None:
    async def ask() -> None:
        client = PrometheusClient(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
        try:
            await client.value("vector(1)")
        finally:
            client.close()

    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        asyncio.run(ask())
