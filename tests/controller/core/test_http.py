"""The one mapping of httpx errors and HTTP statuses to drainctl's errors (controller/core/http.py): what each
client's callers catch, and the words on-call reads. httpx's MockTransport stands in for the network."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.http import HttpErrors, WithStatus, async_client, bearer, client, retry_after_s, send, send_sync

TOKEN = "never-shown-token"


class PeerDown(TemporaryError):
    pass


class PeerSlow(TemporaryError):
    pass


class PeerBusy(TemporaryError):
    pass


class PeerRefusedToken(WithStatus, PermanentError):
    pass


class PeerRefused(WithStatus, PermanentError):
    pass


ERRORS = HttpErrors("the peer at http://peer.test", timeout=PeerSlow, unreachable=PeerDown, unavailable=PeerBusy,
                    credentials=PeerRefusedToken, refused=PeerRefused)


def _call(answer: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
    transport = httpx.MockTransport(answer)
    with client(base_url="http://peer.test/", headers=bearer(TOKEN), timeout=1.0, transport=transport) as http:
        return send_sync(http, ERRORS, "GET", "/v1/things")


def _raised(answer: Callable[[httpx.Request], httpx.Response]) -> DrainctlError:
    with pytest.raises(DrainctlError) as raised:
        _call(answer)
    assert TOKEN not in str(raised.value)
    return raised.value


def _refused_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connect failed", request=request) from ConnectionRefusedError(111, "Connection refused")


def _no_answer(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def test_no_connection_is_unreachable_in_the_operating_systems_words_naming_the_peer_and_the_request() -> None:
    error = _raised(_refused_connection)
    assert type(error) is PeerDown
    assert str(error) == "the peer at http://peer.test is unreachable (GET /v1/things): connection refused"


def test_no_answer_in_time_is_a_timeout() -> None:
    error = _raised(_no_answer)
    assert type(error) is PeerSlow
    assert str(error) == "the peer at http://peer.test did not answer GET /v1/things in time"


@pytest.mark.parametrize(
    ("response", "delay_s"),
    [
        (httpx.Response(429, headers={"Retry-After": "7"}), 7.0),
        (httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), 1.0),  # long past: at once
        (httpx.Response(500, text="disk full"), 1.0),
        (httpx.Response(502), 1.0),
    ],
)
def test_429_and_5xx_are_temporary_and_wait_at_least_what_retry_after_asks(
    response: httpx.Response, delay_s: float
) -> None:
    error = _raised(lambda request: response)
    assert isinstance(error, PeerBusy)
    assert error.delay_s == delay_s
    assert f"HTTP {response.status_code}" in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_refused_credentials_with_their_status(status: int) -> None:
    error = _raised(lambda request: httpx.Response(status, text="no such key"))
    assert isinstance(error, PeerRefusedToken) and error.status == status
    assert str(error) == f"the peer at http://peer.test refused the credentials (GET /v1/things: HTTP {status}): " \
                         "no such key"


def test_other_4xx_are_permanent_and_carry_the_answers_reason() -> None:
    error = _raised(lambda request: httpx.Response(404, text="no such thing"))
    assert isinstance(error, PeerRefused) and error.status == 404
    assert str(error) == "the peer at http://peer.test: GET /v1/things: HTTP 404: no such thing"


def test_a_2xx_is_returned_and_the_token_is_sent_as_a_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    assert _call(answer).json() == {"ok": True}
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert str(seen[0].url) == "http://peer.test/v1/things"


def test_a_client_may_reword_its_messages() -> None:
    errors = HttpErrors("the controller at http://c.test", unreachable_text="cannot reach {where}: {why}")
    words = r"^cannot reach the controller at http://c\.test: connection refused$"
    with client(timeout=1.0, transport=httpx.MockTransport(_refused_connection)) as http, \
            pytest.raises(TemporaryError, match=words):
        send_sync(http, errors, "GET", "http://c.test/v1/instances")


def test_the_async_client_maps_the_same() -> None:
    async def scenario() -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(503, headers={"Retry-After": "2"}))
        async with async_client(base_url="http://peer.test", timeout=1.0, transport=transport) as http:
            with pytest.raises(PeerBusy) as raised:
                await send(http, ERRORS, "POST", "/v1/drain", json={"rate_per_s": 10})
        assert raised.value.delay_s == 2.0

    asyncio.run(scenario())


def test_retry_after_is_seconds_or_an_http_date_and_nothing_else() -> None:
    assert retry_after_s("120") == 120.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412520.0) == 0.0  # already past: at once
    for unusable in (None, "", "soon", "-5", "1.5", "inf"):
        assert retry_after_s(unusable) is None, unusable
