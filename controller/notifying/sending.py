"""Delivering notifications: POST the rendered body to every webhook that wants it, retrying with backoff.

At least once: a 429, a 5xx, a timeout or a refused connection is retried (doubling from `retry_initial_s` to
`retry_max_s`, at least a Retry-After: `controller.core.retrying.backoff`) until `give_up_after_s`; every
attempt carries the same delivery id. Any other answer but a 2xx is a permanent refusal (a malformed template,
a revoked URL): given up at once. Each attempt is counted by outcome:

    delivered   the receiver answered 2xx
    retried     an attempt failed and another one follows
    given_up    the last attempt failed (permanent refusal, or out of time)

Errors and log lines name the webhook by its `name`, never its URL or headers (secrets).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import httpx
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay

from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.http import HttpErrors, WithStatus, async_client, send
from controller.core.retrying import backoff
from controller.notifying.bodies import DELIVERY_HEADER, EVENT_HEADER, Notification, render
from controller.notifying.config import WebhookConfig

log = logging.getLogger("drainctl.notifying")

OUTCOMES = ("delivered", "retried", "given_up")
Sleep = Callable[[float], Awaitable[None]]


class WebhookUnavailable(WithStatus, TemporaryError):
    """The receiver did not answer, timed out, or answered 429/5xx: tried again."""


class WebhookRefused(WithStatus, PermanentError):
    """The receiver answered another error (4xx): not tried again."""


class DeliveryMetrics:
    """`<name>{outcome}`: attempts by outcome (the controller's and the agent's registries)."""

    def __init__(self, registry: CollectorRegistry, name: str = "drainctl_webhook_deliveries") -> None:
        self.attempts = Counter(name, "Webhook delivery attempts, by outcome: delivered, retried, given_up.",
                                ["outcome"], registry=registry)
        for outcome in OUTCOMES:
            self.attempts.labels(outcome)


class Webhooks:
    """Every configured webhook, one shared connection pool; `deliver` returns once each was served or gave
    up (never raises for a receiver's failure)."""

    def __init__(
        self, hooks: Sequence[WebhookConfig], metrics: DeliveryMetrics, *,
        transport: httpx.AsyncBaseTransport | None = None, sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.hooks = tuple(hooks)
        self.metrics = metrics
        self._http = async_client(timeout=10.0, transport=transport)
        self._sleep = sleep

    async def deliver(self, notification: Notification) -> None:
        """To every webhook that wants it, at the same time."""
        wanted = [hook for hook in self.hooks if hook.wants(notification.event)]
        await asyncio.gather(*(self.deliver_to(hook, notification) for hook in wanted))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def deliver_to(self, hook: WebhookConfig, notification: Notification) -> None:
        """Until delivered or given up; never raises for the receiver's failure."""
        try:
            await self._retrying(hook)(self._post, hook, notification)
        except DrainctlError as exc:
            self.metrics.attempts.labels("given_up").inc()
            log.error("webhook %s: %s %s given up: %s", hook.name, notification.event, notification.delivery_id, exc)
            return
        self.metrics.attempts.labels("delivered").inc()
        log.info("webhook %s: %s %s delivered", hook.name, notification.event, notification.delivery_id)

    def _retrying(self, hook: WebhookConfig) -> AsyncRetrying:
        return AsyncRetrying(
            wait=backoff(initial_s=hook.retry_initial_s, max_s=hook.retry_max_s),
            stop=stop_after_delay(hook.give_up_after_s),
            retry=retry_if_exception_type(TemporaryError),
            before_sleep=lambda state: self._retried(hook, state),
            sleep=self._sleep,
            reraise=True,
        )

    def _retried(self, hook: WebhookConfig, state: RetryCallState) -> None:
        self.metrics.attempts.labels("retried").inc()
        error = state.outcome.exception() if state.outcome is not None else None
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("webhook %s: attempt %d failed (%s); retrying in %.1f s", hook.name, state.attempt_number,
                    error, wait_s)

    async def _post(self, hook: WebhookConfig, notification: Notification) -> None:
        headers = {name: value.get_secret_value() for name, value in hook.headers.items()}
        headers[DELIVERY_HEADER] = notification.delivery_id
        headers[EVENT_HEADER] = notification.event.value
        errors = _errors(hook.name)
        await send(self._http, errors, "POST", hook.url.get_secret_value(), json=render(hook.template, notification),
                   headers=headers, timeout=hook.timeout_s)


def _errors(name: str) -> HttpErrors:
    """Messages without the URL: `what` is only the method."""
    return HttpErrors(
        f"webhook {name}", timeout=WebhookUnavailable, unreachable=WebhookUnavailable,
        unavailable=WebhookUnavailable, credentials=WebhookRefused, refused=WebhookRefused,
        timeout_text="{where} did not answer in time", unreachable_text="{where} is unreachable: {why}",
        credentials_text="{where} refused the credentials: HTTP {status}: {reason}",
        status_text="{where}: HTTP {status}: {reason}",
    )
