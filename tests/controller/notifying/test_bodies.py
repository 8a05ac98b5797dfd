"""What a receiver reads: the Slack-compatible default body, templates, and config mistakes as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import parse_config
from controller.core.errors import ConfigError
from controller.notifying.bodies import EventKind, Notification, render
from controller.notifying.config import WebhookConfig
from tests.support.tokens import write_secret

ENDED = Notification(event=EventKind.DRAIN_ENDED, delivery_id="e1-7.drain.ended", instance="api-3", at=1_790_000_000.5,
                     by="controller", drain_id=7, outcome="forced", reason="no progress for 3 s at 12 sockets",
                     source="gcp", sockets_reset=12)


def test_the_default_body_is_slack_text_plus_every_field() -> None:
    body = render(None, ENDED)
    assert body["text"] == ("drainctl: api-3 (drain 7): drain ended: forced, 12 sockets reset: "
                            "no progress for 3 s at 12 sockets")
    assert body["drainctl"]["delivery_id"] == "e1-7.drain.ended"
    assert body["drainctl"]["event"] == "drain.ended" and body["drainctl"]["drain_id"] == 7
    assert body["drainctl"]["time"] == "2026-09-21T14:13:20.500Z"


def test_a_template_fills_placeholders_in_every_string_and_leaves_the_rest() -> None:
    template = {"text": "$instance $outcome ($$5, $reason)", "blocks": [{"n": 3, "id": "$delivery_id"}],
                "empty": "$drain_id", "flag": True}
    started = Notification(event=EventKind.DRAIN_STARTED, delivery_id="d", instance="A", at=0.0, by="controller")
    assert render(template, started) == {"text": "A  ($5, )", "blocks": [{"n": 3, "id": "d"}], "empty": "",
                                         "flag": True}


def _config(tmp_path: Path, **hook: object) -> dict[str, object]:
    url = write_secret(tmp_path / "hook.url", "https://hooks.example.com/services/T0/B0/s3cr3t")
    return {"journal": str(tmp_path / "j.sqlite"), "webhooks": [{"url_file": str(url), **hook}]}


def test_webhooks_are_read_from_controller_yaml_with_url_and_headers_from_files(tmp_path: Path) -> None:
    headers = tmp_path / "hook.headers"
    headers.write_text("# for the bridge\nAuthorization: Bearer h-s3cr3t\n\nX-Team: sre\n", encoding="utf-8")
    config = parse_config(_config(tmp_path, headers_file=str(headers), events=["drain.ended"]))
    (hook,) = config.webhooks
    assert hook.url.get_secret_value().endswith("/s3cr3t")
    assert {k: v.get_secret_value() for k, v in hook.headers.items()} == {"Authorization": "Bearer h-s3cr3t",
                                                                           "X-Team": "sre"}
    assert hook.wants(EventKind.DRAIN_ENDED) and not hook.wants(EventKind.DRAIN_STARTED)
    assert "s3cr3t" not in repr(config)


@pytest.mark.parametrize(("hook", "message"), [
    ({"template": {"text": "$instnace"}}, "webhooks.0.template: template: unknown placeholder $instnace"),
    ({"events": ["drain.finished"]}, "webhooks.0.events: unknown event 'drain.finished'"),
    ({"headers_file": "/nonexistent/h"}, "webhooks.0.headers_file: cannot read '/nonexistent/h'"),
])
def test_a_mistake_in_a_webhook_is_one_line_naming_the_key(tmp_path: Path, hook: dict[str, object],
                                                          message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_config(tmp_path, **hook))
    assert str(raised.value).startswith(f"controller.yaml: {message}")
    assert "\n" not in str(raised.value)


def test_two_webhooks_of_one_name_are_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config["webhooks"] = [*config["webhooks"], *config["webhooks"]]  # type: ignore[misc]
    with pytest.raises(ConfigError, match="two webhooks are named 'webhook'"):
        parse_config(config)


def test_a_url_file_without_a_url_names_the_file_not_its_contents(tmp_path: Path) -> None:
    bad = write_secret(tmp_path / "bad.url", "s3cr3t-not-a-url")
    with pytest.raises(ValueError) as raised:
        WebhookConfig.model_validate({"url_file": str(bad)})
    assert "bad.url" in str(raised.value) and "s3cr3t" not in str(raised.value)
