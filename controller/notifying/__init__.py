"""Webhook notifications, shared by the controller (`controller/listeners/webhooks.py`) and the node agent's
fallback (`controller/agent/notifying.py`): the config section, the bodies and the delivery with retries.

Both ends send the same shapes, so a receiver (Slack, a chat bridge, an incident tool) needs one parser. The
agent must send its own: its fallback acts exactly when the controller is silent. This package imports only
the core (import-linter: it sits beside the wire protocol, below both the listeners and the agent).

    config.py     the `webhooks:` list of controller.yaml and agent.yaml (URL and headers from secret files)
    bodies.py     what happened (`Notification`), its delivery id, and the templated body
    sending.py    delivery: POST with the delivery id, retries with backoff, a metric of outcomes
"""
