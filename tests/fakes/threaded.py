"""Run a fake's aiohttp application on its own event loop in a background thread, driven from the test's thread.

The cloud fakes (`gce_compute`, `gce_metadata`, `azure_imds`) keep their state in a plain object whose methods
run on the fake's loop; `Handle` turns attribute access into calls on that loop, so a synchronous test and an
asyncio test alike can change the fake ("mark this instance DELETING") while a real client talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web


class Fake(Protocol):
    def app(self) -> web.Application: ...

    def close(self) -> None: ...


F = TypeVar("F", bound=Fake)


class Handle(Generic[F]):
    """The fake seen from the test's thread: method calls run on the fake's loop, data attributes are copied."""

    def __init__(self, fake: F, loop: asyncio.AbstractEventLoop, url: str) -> None:
        self._fake = fake
        self._loop = loop
        self.url = url

    def call(self, fn: Callable[[F], Any]) -> Any:
        async def run() -> Any:
            return fn(self._fake)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def __getattr__(self, name: str) -> Any:
        method = getattr(type(self._fake), name, None)
        if callable(method):
            return lambda *args, **kwargs: self.call(lambda fake: method(fake, *args, **kwargs))
        return self.call(lambda fake: copy.deepcopy(getattr(fake, name)))


def sibling(handle: Handle[Any], fake: F) -> Handle[F]:
    """A handle on `fake`, another object living on `handle`'s loop (a fake mounted inside a served one)."""
    return Handle(fake, handle._loop, handle.url)


@contextlib.contextmanager
def serve(fake: F, *, host: str = "127.0.0.1", name: str = "fake", port: int = 0,
          ssl_context: ssl.SSLContext | None = None) -> Iterator[Handle[F]]:
    """`fake` on `host`:`port` (0: a port the kernel picks), on a loop in a background thread; stopped on exit.

    With `ssl_context` it serves HTTPS (the handle's url is then `https://...`)."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def start() -> None:
        runner = web.AppRunner(fake.app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        ready["runner"] = runner
        ready["port"] = runner.addresses[0][1]

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # surfaced to the test below
            ready["error"] = exc
        started.set()
        if "error" not in ready:
            loop.run_forever()

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    started.wait(30)
    if "error" in ready:
        raise ready["error"]
    scheme = "https" if ssl_context is not None else "http"
    handle = Handle(fake, loop, f"{scheme}://{host}:{ready['port']}")
    try:
        yield handle
    finally:

        async def stop() -> None:
            fake.close()
            await ready["runner"].cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
