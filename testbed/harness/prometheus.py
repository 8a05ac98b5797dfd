"""Prometheus as the testbed's metrics store: a config scraping every server each second, and queries.

The controller verifies a drain through Prometheus (DESIGN.md §4), so the testbed runs the real one (Debian
package `prometheus`). Each server is a static target labelled `server: NAME`, scraped every second so a drain
of a few seconds shows in the series; the TSDB lives in the fleet's workdir and goes with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from controller.core.errors import PermanentError, TemporaryError
from testbed.addresses import HostPort
from testbed.harness.http import ProcessApi
from testbed.harness.supervising import Supervised
from testbed.harness.waiting import wait_for

JOB = "testbed"
SCRAPE_INTERVAL = "1s"


def render_config(servers: Sequence[tuple[str, HostPort]]) -> str:
    """prometheus.yml scraping `/metrics` of each (name, address) every second with a `server` label."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [str(address)], "labels": {"server": name}} for name, address in servers
                ],
            }
        ],
    }
    return "# rendered by drainctl's testbed harness\n" + yaml.safe_dump(config, sort_keys=False)


Sample = tuple[dict[str, str], float]


class Prometheus:
    """A running Prometheus: its URL and instant queries."""

    def __init__(self, process: Supervised, address: HostPort) -> None:
        self.process = process
        self.address = address
        self.pid = process.pid
        self._api = ProcessApi(self.url, name="prometheus", keep_alive=False)

    def __repr__(self) -> str:
        return f"Prometheus(url={self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def ready(self) -> bool:
        try:
            return self._api.request("GET", "/-/ready").status_code == 200
        except TemporaryError:
            return False

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        wait_for(self.ready, timeout_s=timeout_s, what=f"prometheus {self.url}/-/ready")

    def wait_scraped(self, servers: Sequence[str], timeout_s: float = 60.0) -> None:
        """Wait until every named server's target has been scraped successfully (`up == 1`)."""

        def all_up() -> bool:
            up = {labels.get("server"): value for labels, value in self.query(f'up{{job="{JOB}"}}')}
            return all(up.get(name) == 1.0 for name in servers)

        wait_for(all_up, timeout_s=timeout_s, what=f"prometheus to scrape {', '.join(servers)}")

    def query(self, expr: str) -> list[Sample]:
        """An instant query: one (labels, value) per series; scalars come back with empty labels."""
        response = self._api.request("GET", "/api/v1/query", params={"query": expr})
        body: dict[str, Any] = response.json() if response.headers.get("content-type", "").startswith(
            "application/json"
        ) else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise PermanentError(f"prometheus: query {expr!r}: {response.status_code} {body.get('error', '')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [({}, float(data["result"][1]))]
        return [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
