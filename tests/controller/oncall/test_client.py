"""The on-call client's own parsing: each kind of answer becomes the error type (and so the exit code) on-call
expects. httpx's MockTransport stands in for the network here only; tests/controller/oncall/test_commands.py runs the
same client against a real controller."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from controller.core.errors import ConfigError, TemporaryError
from controller.oncall.client import (
    ControllerClient,
    ControllerError,
    ControllerRefusedToken,
    ControllerUnavailable,
    ManualDrainsDisabled,
    NotFound,
)
from controller.oncall.waiting import ClosingRate

TOKEN = "the-token"


def _client(answer: Callable[[httpx.Request], httpx.Response]) -> ControllerClient:
    return ControllerClient("http://controller.test:9300", TOKEN, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(401, json={"error": "unauthorized"}), ControllerRefusedToken, "refused the token (401)"),
        (httpx.Response(404, json={"error": "unknown instance 'X' (known: A)"}), NotFound, "unknown instance 'X'"),
        (httpx.Response(409, json={"error": "manual drains are disabled"}), ManualDrainsDisabled, "disabled"),
        (httpx.Response(503, json={"error": "not the leader"}), ControllerUnavailable, "not the leader"),
        (httpx.Response(500, json={"error": "journal: disk full"}), ControllerError, "HTTP 500: journal: disk full"),
        (httpx.Response(404, text="<html>nginx</html>"), ControllerError, "is it the controller's API?"),
        (httpx.Response(200, json=["not", "an", "object"]), ControllerError, "expected a JSON object"),
        (httpx.Response(200, text="not json"), ControllerError, "not JSON"),
    ],
)
def test_each_answer_becomes_the_error_on_call_acts_on(
    response: httpx.Response, error: type[Exception], message: str
) -> None:
    with _client(lambda request: response) as client, pytest.raises(error) as raised:
        client.instance("X")
    assert message in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_usage_errors_and_temporary_errors_map_to_exit_codes_2_and_1() -> None:
    assert issubclass(ControllerRefusedToken, ConfigError) and issubclass(NotFound, ConfigError)
    assert issubclass(ControllerUnavailable, TemporaryError)


def test_the_token_is_sent_as_a_bearer_token_and_names_are_one_path_segment() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"instance": "a/b"})

    with _client(answer) as client:
        client.reset("a/b")
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.raw_path == b"/v1/instances/a%2Fb/reset"


def test_the_closing_rate_is_measured_over_recent_counts() -> None:
    rate = ClosingRate()
    assert rate.see(1000, 0.0) is None
    assert rate.see(900, 0.5) == pytest.approx(200)
    assert rate.see(None, 0.75) is None
    assert rate.see(700, 1.5) == pytest.approx(200)
    assert rate.see(700, 4.0) == pytest.approx(0, abs=1e-9)
