"""One HTTP client for every node agent: a shared connection pool and a bound on requests in flight.

A client per agent cost ~35 ms and ~0.8 MB each (mostly loading the CA bundle; DESIGN.md §10): 1,000 instances
took 41 s to become ready and held 951 MB. The composition root builds one `AgentPool` (`agents:` in
controller.yaml) and hands it to every `AgentClient`; the CA bundle is loaded once, connections to an agent are
kept alive for its next request, and at most `max_in_flight` requests are on the wire at once, whoever sends
them (the engine's drains and counts, the backstop poll, the releases). A request waits for a free place
before its timeout starts, so a busy pool delays a request rather than failing it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from controller.core.http import async_client


class AgentPool:
    """The shared client; `transport`: httpx.MockTransport in unit tests of a client's parsing, else the
    network."""

    def __init__(
        self, *, max_in_flight: int = 64, max_keepalive: int = 16, keepalive_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_keepalive,
                              keepalive_expiry=keepalive_s)
        self._http = async_client(timeout=3.0, limits=limits, transport=transport, trust_env=True)
        self._slots = asyncio.Semaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        """Requests on the wire now (at most `max_in_flight`)."""

    async def request(self, method: str, url: str, *, timeout_s: float, **kwargs: Any) -> httpx.Response:
        """One request (its body read); raises httpx's errors, which the caller maps to its own."""
        async with self._slots:
            self.in_flight += 1
            try:
                return await self._http.request(method, url, timeout=timeout_s, **kwargs)
            finally:
                self.in_flight -= 1

    async def aclose(self) -> None:
        await self._http.aclose()
