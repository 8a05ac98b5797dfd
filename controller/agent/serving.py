"""Run the agent: wire its parts from the settings, serve the API until SIGTERM/SIGINT, clean up.

When listening, it prints one JSON line to stdout, `{"event": "ready", "listen": "HOST:PORT", "pid": PID}`,
so a supervisor (or a test) that asked for port 0 learns the bound address. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

from aiohttp import web

from controller.agent.apphook import AppDrainHook
from controller.agent.clock import SystemClock
from controller.agent.config import AgentSettings
from controller.agent.metrics import AgentMetrics
from controller.agent.node import NodeAgent
from controller.agent.notices import LocalRelease, NoticeBook
from controller.agent.routes import build_app
from controller.agent.sockets import ServiceSockets
from controller.errors import ConfigError

log = logging.getLogger(__name__)


def serve(settings: AgentSettings) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(settings))


def build_agent(settings: AgentSettings) -> NodeAgent:
    config = settings.config
    clock = SystemClock()
    return NodeAgent(
        sockets=ServiceSockets(config.service_port, config.service_address),
        hook=AppDrainHook(config.app.drain_url, settings.app_token, timeout_s=config.app.timeout_s),
        book=NoticeBook(LocalRelease(), clock),
        metrics=AgentMetrics(config.service_port),
        fallback=config.fallback,
        clock=clock,
    )


async def _serve(settings: AgentSettings) -> None:
    config = settings.config
    agent = build_agent(settings)
    runner = web.AppRunner(build_app(agent, settings.token), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await _listen(runner, config.listen_host, config.listen_port)
        await _until_signalled()
    finally:
        await runner.cleanup()
        await agent.aclose()


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise ConfigError(f"agent: listen: cannot bind {host}:{port}: {exc.strerror}") from exc
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
    print(json.dumps({"event": "ready", "listen": shown, "pid": os.getpid()}), flush=True)
    log.info("agent listening on %s", shown)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("agent stopping")
