"""The node agent: the controller's hands on one API server host, and its local fallback.

It runs on every API server (`drainctl agent --config agent.yaml`) and offers, over a token-guarded HTTP API,
the few things only the host can do: ask the app to drain, count established sockets through the kernel, reset
them with TCP RSTs, and record the platform's lifecycle notices. When a notice arrives and no controller drain
follows within a grace period, it drains, resets and releases by itself (DESIGN.md §1, layer 2).
"""
