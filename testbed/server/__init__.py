"""The reference API server: Phoenix Channels v2 over WebSocket, drain, health, metrics, rate limit.

It stands in for the real portal (DESIGN.md §6). How it is put together:

    command.py     flags -> ServerOptions (options.py)
    serving.py     wiring: both listeners, the ready line, signals, shutdown with 1001
    handshakes.py  every HTTP request on the main port: /healthz, /readyz, /metrics, socket admission
    limiting.py    the connect rate limit (token bucket per client IP and token hash)
    handling.py    one accepted socket: answer its messages (channels.py), count why it ended
    sockets.py     the registry of open sockets the sweeper and the drainer walk
    sweeping.py    the idle timeout, one periodic sweep
    draining.py    graceful drain: readiness off, paced closes with 1012
    admin.py       the admin port: drain and status behind a bearer token
    metrics.py     the Prometheus metrics (names are a contract)
"""
