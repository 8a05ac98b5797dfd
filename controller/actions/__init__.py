"""The controller's hands: thin async actions the reconciler calls, each behind a Protocol.

`hosts` (drain, count, reset on one host: the node agent), `verification` (is the host at zero sockets:
Prometheus and the kernel count), `release` (tell the platform it may proceed). The reconciler decides; these
only do, and raise our `TemporaryError`/`PermanentError` when they cannot. The engine's tests replace each
Protocol with an in-memory fake.
"""
