"""Delivery against a real receiver on loopback: retried with the same delivery id until delivered, a refusal
given up at once, every attempt counted, and neither the URL nor a header in drainctl's log lines (httpx's own
request lines carry the URL: `controller.core.logs.configure` keeps them at WARNING, tests/e2e check it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from controller.notifying.bodies import EventKind, Notification
from controller.notifying.config import WebhookConfig
from controller.notifying.sending import DeliveryMetrics, Webhooks
from tests.fakes.threaded import serve
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support.tasks import async_test
from tests.support.tokens import write_secret

SECRET_PATH = "/hooks/T0/B0/url-s3cr3t"
AUTHORIZATION = "Bearer header-s3cr3t"
NOTE = Notification(event=EventKind.FALLBACK_STARTED, delivery_id="agent-A-n1.fallback.started", instance="A",
                    at=1.0, by="agent")


def _hook(tmp_path: Path, url: str, **options: object) -> WebhookConfig:
    url_file = write_secret(tmp_path / "hook.url", url + SECRET_PATH)
    headers = write_secret(tmp_path / "hook.headers", f"Authorization: {AUTHORIZATION}")
    return WebhookConfig.model_validate({"name": "oncall", "url_file": str(url_file), "headers_file": str(headers),
                                         "retry_initial_s": 0.05, "retry_max_s": 0.2, **options})


def _count(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("drainctl_webhook_deliveries_total", {"outcome": outcome})
    return value or 0.0


@async_test
async def test_a_receiver_failing_twice_gets_it_once_with_one_delivery_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = CollectorRegistry()
    with serve(WebhookReceiver(path=SECRET_PATH, authorization=AUTHORIZATION, fail_first=2)) as receiver:
        webhooks = Webhooks([_hook(tmp_path, receiver.url)], DeliveryMetrics(registry))
        await webhooks.deliver(NOTE)
        await webhooks.aclose()
        attempts = receiver.attempts
    assert [(a.delivery_id, a.status) for a in attempts] == [(NOTE.delivery_id, 500), (NOTE.delivery_id, 500),
                                                             (NOTE.delivery_id, 200)]
    assert attempts[-1].body["drainctl"]["delivery_id"] == NOTE.delivery_id
    assert attempts[-1].event == "fallback.started"
    assert (_count(registry, "retried"), _count(registry, "delivered"), _count(registry, "given_up")) == (2, 1, 0)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("drainctl."))
    assert "delivered" in ours and "attempt 2 failed" in ours
    assert "s3cr3t" not in ours, "drainctl names the webhook, never its URL or headers (httpx: see core/logs.py)"


@async_test
async def test_a_refusal_is_given_up_at_once_and_an_unreachable_one_after_its_time(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = DeliveryMetrics(registry)
    with serve(WebhookReceiver(path=SECRET_PATH, authorization="Bearer another")) as receiver:
        refused = Webhooks([_hook(tmp_path, receiver.url)], metrics)
        await refused.deliver(NOTE)
        await refused.aclose()
        assert [a.status for a in receiver.attempts] == [401], "a 401 is not retried"
    assert _count(registry, "given_up") == 1
    gone = Webhooks([_hook(tmp_path, "http://127.0.0.1:9", give_up_after_s=0.3)], metrics)
    await gone.deliver(NOTE)
    await gone.aclose()
    assert _count(registry, "given_up") == 2 and _count(registry, "retried") >= 1


@async_test
async def test_only_the_events_a_webhook_asked_for_are_sent(tmp_path: Path) -> None:
    with serve(WebhookReceiver(path=SECRET_PATH, authorization=AUTHORIZATION)) as receiver:
        webhooks = Webhooks([_hook(tmp_path, receiver.url, events=["drain.ended"])],
                            DeliveryMetrics(CollectorRegistry()))
        await webhooks.deliver(NOTE)
        await webhooks.deliver(Notification(event=EventKind.DRAIN_ENDED, delivery_id="x", instance="A", at=2.0,
                                            by="controller", outcome="graceful"))
        await webhooks.aclose()
        assert [a.event for a in receiver.attempts] == ["drain.ended"]
