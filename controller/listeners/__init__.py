"""What hangs off the engine: listeners that hear every journaled transition and every event taken.

They implement `controller.core.ports.Listener` (or `AsyncListener` for I/O) and are handed to the engine by
the composition root (`controller/app.py`): the engine never imports this package. `metrics` is the first
one; webhooks and Kubernetes events come next, the former reading the journal as an outbox (see
`controller/engine/announcing.py`).
"""
