"""A stand-in for the app the agent sits beside: a TCP echo service plus the reference server's drain hook.

Run as a subprocess (so tests can SIGSTOP it): `python standin_app.py --token-file F [--on-drain close|ignore]`.
Prints one JSON line `{"service_port": P, "admin_url": URL}` when listening. Admin routes, bearer token required:
`POST /admin/drain {"rate_per_s": R}` -> 202 (and with `--on-drain close`, closes the service sockets at R/s),
`GET /admin/status`; plus `GET /test/drains`, the drain requests it received, for the tests to inspect.
It stands in for the app (testbed/server), not for the agent under test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from aiohttp import web


class StandIn:
    def __init__(self, token: str, on_drain: str) -> None:
        self.token = token
        self.on_drain = on_drain
        self.writers: set[asyncio.StreamWriter] = set()
        self.drains: list[dict[str, object]] = []
        self.draining = False

    async def echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def drain(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        rate = float((await request.json())["rate_per_s"])
        self.drains.append({"rate_per_s": rate})
        open_sockets = len(self.writers)
        if self.on_drain == "close":
            self.draining = True
            asyncio.get_running_loop().create_task(self._close_all(rate))
        return web.json_response({"accepted": True, "open_sockets": open_sockets, "rate_per_s": rate}, status=202)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"name": "stand-in", "draining": self.draining, "open_sockets": len(self.writers), "fault": None,
             "drain_rate_per_s": self.drains[-1]["rate_per_s"] if self.drains else None}
        )

    async def received(self, request: web.Request) -> web.Response:
        return web.json_response(self.drains)

    async def _close_all(self, rate_per_s: float) -> None:
        for writer in list(self.writers):
            writer.close()
            await asyncio.sleep(1 / rate_per_s)


async def main(token: str, on_drain: str) -> None:
    stand_in = StandIn(token, on_drain)
    service = await asyncio.start_server(stand_in.echo, "127.0.0.1", 0)
    app = web.Application()
    app.router.add_post("/admin/drain", stand_in.drain)
    app.router.add_get("/admin/status", stand_in.status)
    app.router.add_get("/test/drains", stand_in.received)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    admin_port = runner.addresses[0][1]
    service_port = service.sockets[0].getsockname()[1]
    print(json.dumps({"service_port": service_port, "admin_url": f"http://127.0.0.1:{admin_port}"}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--on-drain", choices=["close", "ignore"], default="ignore")
    args = parser.parse_args()
    asyncio.run(main(args.token_file.read_text().strip(), args.on_drain))
