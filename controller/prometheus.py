"""The controller's Prometheus client: instant queries through prometheus-api-client, with our errors.

prometheus-api-client is synchronous (requests); each query runs in a worker thread so the reconciler's loop
never blocks on Prometheus. Its own retries are turned off: the reconciler decides when to ask again.

    PrometheusUnavailable (TemporaryError)   no answer, timeout, 5xx, or an answer that is not the API's JSON
    PrometheusQueryError (PermanentError)    4xx: the query itself is wrong (fix `prometheus.query`)
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controller.core.errors import PermanentError, TemporaryError

Sample = tuple[Mapping[str, str], float]


class PrometheusUnavailable(TemporaryError):
    pass


class PrometheusQueryError(PermanentError):
    pass


class PrometheusClient:
    """Instant queries against one Prometheus server."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self.url = url
        self._timeout_s = timeout_s
        self._connect = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0), timeout=timeout_s)

    async def vector(self, query: str) -> list[Sample]:
        """Every sample of an instant query: (labels, value). Empty when no series has a fresh sample."""
        raw = await self._query(query)
        return _samples(raw, query)

    async def value(self, query: str) -> float | None:
        """The single value of an aggregated query (e.g. `sum(...)`); None when there is no fresh sample."""
        samples = await self.vector(query)
        if not samples:
            return None
        if len(samples) > 1:
            raise PrometheusQueryError(f"prometheus: {query!r} returned {len(samples)} series, expected one")
        return samples[0][1]

    async def ready(self) -> bool:
        try:
            await self._query("vector(1)")
        except TemporaryError:
            return False
        return True

    def close(self) -> None:
        self._connect.close()

    async def _query(self, query: str) -> Any:
        try:
            return await asyncio.to_thread(self._connect.custom_query, query)
        except PrometheusApiClientException as exc:
            status = _status(str(exc))
            if 400 <= status < 500 and status not in (408, 429):
                raise PrometheusQueryError(f"prometheus at {self.url} refused {query!r}: {exc}") from exc
            raise PrometheusUnavailable(f"prometheus at {self.url}: {exc}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # requests' errors are OSErrors; ValueError/KeyError/TypeError: a body that is not the API's JSON.
            raise PrometheusUnavailable(f"prometheus at {self.url} unreachable: {type(exc).__name__}: {exc}") from exc


def _status(message: str) -> int:
    """prometheus-api-client only puts the status in its message: "HTTP Status Code 400 (...)"."""
    for before, word in itertools.pairwise(message.split()):
        if before == "Code" and word.isdigit():
            return int(word)
    return 0


def _samples(raw: Any, query: str) -> list[Sample]:
    try:
        if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict):
            return [({}, _number(raw[1]))]  # a scalar result: [timestamp, "value"]
        return [(dict(item.get("metric", {})), _number(item["value"][1])) for item in raw]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise PrometheusUnavailable(f"prometheus: unexpected answer to {query!r}: {exc!r}") from exc


def _number(text: Any) -> float:
    value = float(text)
    if math.isnan(value):
        raise TypeError("NaN sample")
    return value


class InstanceQuery(Protocol):
    def query_for(self, instance: str) -> str:
        """The PromQL giving `instance`'s open sockets (`prometheus.query` with `{instance}` replaced)."""
        ...


class PrometheusGauge:
    """`SocketGauge` through Prometheus with the configured query (`{instance}` replaced)."""

    def __init__(self, client: PrometheusClient, config: InstanceQuery) -> None:
        self._client = client
        self._config = config

    async def open_sockets(self, instance: str) -> int | None:
        value = await self._client.value(self._config.query_for(instance))
        return None if value is None else round(value)
