"""Run the agent: wire its parts from the settings, serve the API until SIGTERM/SIGINT, clean up.

When listening, it prints one JSON line to stdout, `{"event": "ready", "listen": "HOST:PORT", "pid": PID}`,
so a supervisor (or a test) that asked for port 0 learns the bound address. Logs go to stderr.

The platform (`platform.kind`) decides the release and the watchers: local (none), azure (Scheduled Events,
released with StartRequests), gcp (guest metadata; released by the shutdown hold returning). Notices of the
previous run are restored from `state_file` first, and their fallbacks resume.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from controller.agent.apphook import AppDrainHook
from controller.agent.config import AgentSettings, AzurePlatform, GcpPlatform
from controller.agent.keeping import NoticeFile
from controller.agent.metrics import AgentMetrics
from controller.agent.node import NodeAgent
from controller.agent.notices import LocalRelease, NoticeBook, PlatformRelease
from controller.agent.notifying import FallbackNotices
from controller.agent.pushing import Pusher
from controller.agent.routes import build_app
from controller.agent.sockets import ServiceSockets
from controller.agent.watchers import azure as azure_events
from controller.agent.watchers import gce as gce_metadata
from controller.agent.watchers.common import WatchMetrics
from controller.core import logs
from controller.core.clocks import SystemClock
from controller.core.errors import ConfigError
from controller.core.logs import LogConfig
from controller.core.systemd import Notifier
from controller.notifying.sending import DeliveryMetrics, Webhooks

log = logging.getLogger("drainctl.agent.serving")


def serve(settings: AgentSettings, *, log: LogConfig | None = None, middlewares: Sequence[Middleware] = ()) -> None:
    """`middlewares` run inside the agent's own (after the token, inside its error mapping): only the testbed's
    fault switch passes any (testbed/agent_faults.py); `drainctl agent` never does."""
    logs.configure(log if log is not None else settings.config.log)  # httpx stays at WARNING: watchers poll
    logs.bind_process(instance=settings.config.instance)
    asyncio.run(_serve(settings, middlewares))


def build_agent(settings: AgentSettings) -> NodeAgent:
    """The agent with its platform's release; `watch_platform` starts the platform's watchers."""
    config = settings.config
    clock = SystemClock()
    release: PlatformRelease = LocalRelease()
    if isinstance(config.platform, AzurePlatform):
        release = azure_events.AzureRelease(_imds_client(config.platform))
    store = NoticeFile(config.state_file) if config.state_file is not None else None
    metrics = AgentMetrics(config.service_port)
    return NodeAgent(
        sockets=ServiceSockets(config.service_port, config.service_address),
        hook=AppDrainHook(config.app.drain_url, settings.app_token, timeout_s=config.app.timeout_s,
                          not_ready_url=config.app.not_ready_url),
        book=NoticeBook(release, clock, store),
        metrics=metrics,
        fallback=config.fallback,
        clock=clock,
        pusher=_pusher(settings, clock),
        notices=_notifier(settings, metrics),
    )


def _pusher(settings: AgentSettings, clock: SystemClock) -> Pusher | None:
    """Pushes to `controllers:` with the push token; None without controllers."""
    config, push = settings.config, settings.config.push
    if not config.controllers or push is None or settings.push_token is None:
        return None
    return Pusher(config.controllers, settings.push_token, instance=config.instance,
                  agent_url=config.advertise_url, clock=clock, pool=push.pool, timeout_s=push.timeout_s,
                  retry_initial_s=push.retry_initial_s, retry_max_s=push.retry_max_s)


def _notifier(settings: AgentSettings, metrics: AgentMetrics) -> FallbackNotices | None:
    """The fallback's webhooks (`webhooks:` of agent.yaml), or None without any."""
    hooks = settings.config.webhooks
    if not hooks:
        return None
    deliveries = DeliveryMetrics(metrics.registry, "drainctl_agent_webhook_deliveries")
    return FallbackNotices(Webhooks(hooks, deliveries), instance=settings.config.instance)


def watch_platform(agent: NodeAgent, settings: AgentSettings) -> None:
    """Start the platform's watcher (Azure Scheduled Events, GCE metadata); none on the local platform."""
    config = settings.config
    platform = config.platform
    metrics = WatchMetrics(agent.metrics.registry)
    if isinstance(platform, AzurePlatform):
        events = azure_events.ScheduledEventsWatcher(
            _imds_client(platform), agent, resource_name=platform.resource_name, fallback_name=config.instance,
            metrics=metrics.of(azure_events.SOURCE), poll_s=platform.poll_s, retry_max_s=platform.retry_max_s,
            drain_on_freeze=platform.drain_on_freeze,
        )
        agent.spawn(events.run())
    elif isinstance(platform, GcpPlatform):
        client = gce_metadata.MetadataClient(platform.metadata_url, watch_timeout_s=platform.watch_timeout_s)
        guest = gce_metadata.GuestMetadataWatcher(
            client, agent, metrics=metrics.of(gce_metadata.SOURCE), preempted_notice_s=platform.preempted_notice_s,
            maintenance_notice_s=platform.maintenance_notice_s, grace_s=platform.grace_s,
            drain_on_migrate=platform.drain_on_migrate, retry_max_s=platform.retry_max_s,
        )
        agent.spawn(guest.run())


def _imds_client(platform: AzurePlatform) -> azure_events.ScheduledEventsClient:
    return azure_events.ScheduledEventsClient(platform.imds_url, timeout_s=platform.timeout_s)


async def _serve(settings: AgentSettings, middlewares: Sequence[Middleware] = ()) -> None:
    config = settings.config
    agent = build_agent(settings)
    if config.state_file is None:
        log.info("notices are kept in memory only (no state_file): a restart forgets open notices")
    agent.restore()
    watch_platform(agent, settings)
    app = build_app(agent, settings.token, hold_window_s=config.hold.window_s)
    app.middlewares.extend(middlewares)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    notifier = Notifier()
    try:
        shown = await _listen(runner, config.listen_host, config.listen_port)
        if agent.pusher is not None and config.push is not None and config.push.advertise_url is None:
            agent.pusher.agent_url = f"http://{shown}"  # the bound port, when listen asked for port 0
        notifier.ready("agent listening")
        watchdog = asyncio.create_task(notifier.keep_alive(), name="watchdog")
        await _until_signalled()
        notifier.stopping()
        watchdog.cancel()
    finally:
        await runner.cleanup()
        await agent.aclose()


async def _listen(runner: web.AppRunner, host: str, port: int) -> str:
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise ConfigError(f"agent: listen: cannot bind {host}:{port}: {exc.strerror}") from exc
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
    print(json.dumps({"event": "ready", "listen": shown, "pid": os.getpid()}), flush=True)
    log.info("agent listening on %s", shown)
    return shown


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("agent stopping")
