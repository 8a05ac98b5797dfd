"""The controller daemon: engine, sources and API in one process, until SIGTERM or SIGINT.

It assembles the engine from the config (which resumes every unfinished drain from the journal), binds the
API, prints one line to stdout, and runs the engine with its sources (with `leader:` configured, only while
this replica holds the lease; a standby's API answers 503 on `/v1/`) until SIGTERM or SIGINT:

    {"event": "ready", "api": "HOST:PORT", "pid": PID}

(`api.listen` may use port 0; the line says which port was bound.) On the signal it stops the sources and
the reconcile passes (journal writes are synchronous, so none is cut in half: a pass stops only between
them), closes the API and exits 0. A bad config is one line and exit 2; an engine that crashes, exit 1.
Logs go to stderr, one line per event; tokens are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal

from aiohttp import web

from controller.api import build_app
from controller.api.pushes import Pushes
from controller.app import Assembly, assemble
from controller.config import ApiConfig, ControllerConfig
from controller.core import logs
from controller.core.errors import ConfigError
from controller.core.logs import LogConfig
from controller.core.settings import HostPort
from controller.core.systemd import Notifier

log = logging.getLogger("drainctl.run")



def serve(config: ControllerConfig, api: ApiConfig, *, log: LogConfig | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; the exit code (0, or 1 when the engine crashed)."""
    configure_logging(log if log is not None else config.log)
    return asyncio.run(_serve(config, api))


def configure_logging(log: LogConfig | None = None) -> None:
    """`controller.core.logs.configure`: the format and level of `log:`, the drain id on every drain line."""
    logs.configure(log if log is not None else LogConfig())


async def _serve(config: ControllerConfig, api: ApiConfig) -> int:
    async with assemble(config) as controller:
        app = build_app(controller.engine, api.token.get_secret_value(), is_leader=lambda: controller.leading,
                        leader_url=lambda: controller.leader_url,
                        pushes=_pushes(config, api, controller))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            shown = await _listen(runner, api.listen)
            stop = _stop_on_signals()
            print(json.dumps({"event": "ready", "api": shown, "pid": os.getpid()}), flush=True)
            log.info("controller ready: API on %s, %d instances, sources: %s", shown,
                     len(controller.engine.inventory), ", ".join(s.name for s in controller.sources) or "none")
            notifier = Notifier()
            notifier.ready(f"API on {shown}")
            watchdog = asyncio.create_task(notifier.keep_alive(), name="watchdog")
            try:
                return await _run_until(stop, controller)
            finally:
                notifier.stopping()
                watchdog.cancel()
        finally:
            await runner.cleanup()


def _pushes(config: ControllerConfig, api: ApiConfig, controller: Assembly) -> Pushes | None:
    """The agents' push route, when `api.push_token_file` is set."""
    if api.push_token is None or controller.agents is None:
        return None
    return Pushes(api.push_token.get_secret_value(), controller.engine, controller.agents,
                  learned_pool=config.agents.learned_pool, max_batch=api.push_batch_max)


async def _run_until(stop: asyncio.Event, controller: Assembly) -> int:
    engine = asyncio.create_task(controller.run(), name="engine")
    stopping = asyncio.create_task(stop.wait(), name="signals")
    await asyncio.wait({engine, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if engine.done():
        log.error("engine stopped unexpectedly: %r", engine.exception())
        return 1
    log.info("stopping: sources and reconcile passes end; the journal keeps what is unfinished")
    engine.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await engine
    log.info("controller stopped")
    return 0


async def _listen(runner: web.AppRunner, listen: HostPort) -> str:
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
    except OSError as exc:
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ConfigError(f"api.listen: cannot bind {listen}: {why}") from exc
    bound_host, bound_port = runner.addresses[0][:2]
    return str(HostPort(str(bound_host), int(bound_port)))


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
