"""How the on-call commands show the API's JSON: rich tables, one-line summaries, or the JSON itself.

Everything here is a pure function of the API's shapes (controller/api/shapes.py), so what a command prints
is what the controller said, never a guess.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPE_WIDTH = 160
"""Width of tables written to a file or a pipe (a terminal's own width is used when there is one)."""

PHASE_STYLES = {
    "idle": "dim", "pending": "yellow", "draining": "cyan", "verifying": "cyan", "forcing": "magenta",
    "drained": "green", "released": "green", "failed": "bold red",
}

Json = Mapping[str, Any]


def console() -> Console:
    return Console(highlight=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def print_json(body: object) -> None:
    sys.stdout.write(json.dumps(body, indent=2) + "\n")
    sys.stdout.flush()


# --- tables --------------------------------------------------------------------------------------------------


def status_table(instances: Sequence[Json]) -> Table:
    table = Table(title="instances", title_justify="left")
    for column in ("INSTANCE", "POOL", "PHASE", "DRAIN", "SOCKETS", "RATE", "DEADLINE", "OUTCOME", "REASON"):
        table.add_column(column, no_wrap=column != "REASON", justify="right" if column == "SOCKETS" else "left")
    for item in instances:
        running = not item.get("finished", True)
        table.add_row(
            str(item["instance"]),
            str(item.get("pool") or ""),
            phase_text(str(item["phase"])),
            _or_dash(item.get("drain_id")),
            _or_dash(item.get("sockets_remaining")),
            f"{item['rate_per_s']:g}/s" if running and item.get("rate_per_s") else "-",
            _deadline(item) if running else "-",
            _or_dash(item.get("outcome")),
            str(item.get("reason") or ""),
        )
    return table


def history_table(drains: Sequence[Json]) -> Table:
    table = Table(title="drains, most recent first", title_justify="left")
    columns = ("DRAIN", "INSTANCE", "SOURCE", "KIND", "STARTED", "PHASE", "OUTCOME", "BEFORE", "RESET", "TOOK")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in ("BEFORE", "RESET", "TOOK") else "left")
    table.add_column("REASON")
    for drain in drains:
        table.add_row(
            str(drain["id"]),
            str(drain["instance"]),
            str(drain["source"]),
            str(drain["kind"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(drain["created_at"]))),
            phase_text(str(drain["phase"])),
            _or_dash(drain.get("outcome")),
            _or_dash(drain.get("sockets_before")),
            str(drain.get("sockets_reset") or 0),
            seconds(took_s(drain)) if drain.get("finished") else "-",
            str(drain.get("reason") or ""),
        )
    return table


def phase_text(phase: str) -> Text:
    return Text(phase, style=PHASE_STYLES.get(phase, ""))


# --- lines ---------------------------------------------------------------------------------------------------


def progress_line(status: Json, observed_per_s: float | None) -> Text:
    """`A verifying: 120 sockets left, closing ~180/s (paced 200/s), reset in 12.3 s`."""
    left = status.get("sockets_remaining")
    parts: list[str | Text] = [f"{status['instance']} ", phase_text(str(status["phase"])), ": "]
    if status["phase"] == "draining":  # before the drain request is answered: the out-of-rotation step
        parts.append("out of rotation first, waiting for the load balancer" if left is None
                     else f"out of rotation first ({left} sockets kept), waiting for the load balancer")
        return Text.assemble(*parts)
    parts.append("counting sockets" if left is None else f"{left} sockets left")
    rate = status.get("rate_per_s")
    if observed_per_s is not None:
        parts.append(f", closing ~{observed_per_s:.0f}/s")
        parts.append(f" (paced {rate:g}/s)" if rate else "")
    elif rate:
        parts.append(f", paced {rate:g}/s")
    parts.append(f", {_deadline(status)}")
    return Text.assemble(*parts)


def submission_line(body: Json, instance: str) -> str:
    disposition, drain = body["disposition"], body.get("drain")
    if drain is None:
        return f"{instance}: request {disposition}; nothing was started"
    ident = f"drain {drain['id']}"
    if disposition == "started":
        return (f"{instance}: {ident} started ({drain['source']}): graceful at {drain['rate_per_s']:g}/s for up to "
                f"{drain['drain_deadline_s']:g} s, then what is left is reset")
    if disposition == "merged":
        return f"{instance}: already in {ident} ({drain['source']}, {drain['phase']}); this request joined it"
    if disposition == "stale":
        return (f"{instance}: not started: {ident} ({drain['source']}, {drain['phase']}) already covers this "
                f"deadline; `drainctl reset {instance}` resets what is left")
    return f"{instance}: this request was already received ({ident}, {drain['phase']})"


def dry_run_lines(body: Json) -> list[str]:
    plan = body["dry_run"]
    instance, disposition = plan["instance"], plan["disposition"]
    if disposition != "started":
        return [f"dry run: {instance}: would not start a drain ({disposition}): {plan['why']}", "nothing was changed"]
    when = "now" if plan["would_start_now"] else f"later ({plan['why']})"
    lines = [f"dry run: {instance} would start draining {when}"]
    if plan["would_start_now"]:
        lines.append(f"  why: {plan['why']}")
    lines.append(f"  graceful at {plan['rate_per_s']:g}/s, then reset what is left in {seconds(plan['force_in_s'])}")
    lines.append(f"  done (verified or reset) by {seconds(plan['release_in_s'])} from now")
    lines.append("nothing was changed: no journal line, no call to the host")
    return lines


def outcome_line(drain: Json) -> str:
    """The end of a drain in words: what was closed gracefully, what was reset, and how long it took."""
    ident = f"{drain['instance']}: drain {drain['id']}"
    took = seconds(took_s(drain))
    before, reset = drain.get("sockets_before"), int(drain.get("sockets_reset") or 0)
    if drain["phase"] == "failed":
        return f"{ident} failed after {took}: {drain.get('reason') or 'no reason recorded'}"
    if drain.get("outcome") == "graceful":
        closed = f"{before} sockets" if before is not None else "every socket"
        return f"{ident} graceful: {closed} closed by the app, 0 reset, verified zero by {drain['verified_by']}, {took}"
    if drain.get("outcome") == "forced":
        graceful = max(0, before - reset) if before is not None else "?"
        return (f"{ident} forced: {graceful} sockets closed by the app, {reset} reset ({drain.get('reason')}), "
                f"{took}")
    return f"{ident} ended in {drain['phase']} ({drain.get('outcome') or 'no outcome'}), {took}"


def reset_line(body: Json) -> str:
    drain = body["drain"]
    if body["done"]:
        return f"{body['instance']}: {body['reset']} sockets reset (drain {drain['id']}, {drain['phase']})"
    return f"{body['instance']}: reset not done: {body['why']}"


# --- formatting ----------------------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def took_s(drain: Json) -> float:
    end = drain.get("released_at") or drain.get("updated_at") or drain["created_at"]
    return float(end) - float(drain["created_at"])


def _deadline(status: Json) -> str:
    if status.get("phase") == "forcing":
        return "resetting now"
    reset_in, platform_in = status.get("drain_deadline_in_s"), status.get("not_after_in_s")
    if reset_in is not None:
        return f"reset in {seconds(max(0.0, reset_in))}"
    if platform_in is not None:
        return f"waiting; deadline in {seconds(max(0.0, platform_in))}"
    return "-"


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
