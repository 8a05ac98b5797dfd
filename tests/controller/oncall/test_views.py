"""`drainctl history -o wide` and `status INSTANCE` show an episode's platform handles, with their source where an
episode holds handles of two platforms (issue 9, beyond the eleven: a second platform's handle)."""

from __future__ import annotations

import io

from rich.console import Console

from controller.api.shapes import drain_json
from controller.core.models import Drain, EventKind, Phase, Ref
from controller.oncall.views import history_table, refs_text


def _drain(*refs: Ref) -> Drain:
    return Drain(id=3, instance="A", pool="web", source="gcp", kind=EventKind.PREEMPT, event_id="e", not_after=160.0,
                 rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True, refs=refs, phase=Phase.RELEASED,
                 created_at=100.0, updated_at=120.0, released_at=120.0)


def test_the_api_gives_the_handles_as_before_and_each_with_its_source_and_release() -> None:
    body = drain_json(_drain(Ref("gcp", "H1", released_at=119.0), Ref("local", "H2", release_error="refused")))
    assert body["handles"][0]["not_after"] is None
    assert body["refs"] == ["H1", "H2"], "the handles, as scripts read them before"
    assert body["handles"] == [
        {"source": "gcp", "handle": "H1", "not_after": None, "released_at": 119.0, "release_error": None},
        {"source": "local", "handle": "H2", "not_after": None, "released_at": None, "release_error": "refused"},
    ]


def test_the_cli_names_the_source_only_where_an_episode_holds_two_platforms() -> None:
    one = drain_json(_drain(Ref("gcp", "H1"), Ref("gcp", "H3")))
    two = drain_json(_drain(Ref("gcp", "H1"), Ref("local", "H2")))
    assert refs_text(one) == "H1, H3"
    assert refs_text(two) == "gcp:H1, local:H2"
    assert refs_text({"refs": ["n1"]}) == "n1", "a controller without `handles` still shows its refs"
    out = io.StringIO()
    Console(file=out, width=400).print(history_table([two], wide=True))
    assert "gcp:H1, local:H2" in out.getvalue()
