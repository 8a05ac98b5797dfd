"""How the on-call commands show the API's JSON: rich tables, one-line summaries, or the JSON itself.

Everything here is a pure function of the API's shapes (controller/api/shapes.py), so what a command prints
is what the controller said, never a guess.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from controller.core.timestamps import rfc3339

PIPE_WIDTH = 160
"""Width of tables written to a file or a pipe (a terminal's own width is used when there is one)."""

PHASE_STYLES = {
    "idle": "dim", "pending": "yellow", "draining": "cyan", "verifying": "cyan", "forcing": "magenta",
    "drained": "green", "released": "green", "failed": "bold red", "cancelled": "yellow",
}
LINE_WIDTH = 80
"""The live progress line never runs past this (nor past a narrower terminal): one line, updated in place."""

Json = Mapping[str, Any]


WIDE_PIPE_WIDTH = 320
"""Width of `-o wide` tables written to a file or a pipe: their extra columns need the room."""


def console(*, wide: bool = False) -> Console:
    width = None if sys.stdout.isatty() else (WIDE_PIPE_WIDTH if wide else PIPE_WIDTH)
    return Console(highlight=False, markup=False, soft_wrap=True, width=width)


def print_json(body: object) -> None:
    sys.stdout.write(json.dumps(body, indent=2) + "\n")
    sys.stdout.flush()


# --- tables --------------------------------------------------------------------------------------------------


def status_table(instances: Sequence[Json], *, wide: bool = False) -> Table:
    table = Table(title="instances", title_justify="left")
    columns = ["INSTANCE", "POOL", "PHASE", "DRAIN", "SOCKETS", "RATE", "DEADLINE", "OUTCOME"]
    columns += ["KERNEL", "PROMETHEUS", "OBSERVED", "PLATFORM DEADLINE", "ERROR"] if wide else []
    for column in [*columns, "REASON"]:
        table.add_column(column, no_wrap=column not in ("REASON", "ERROR"),
                         justify="right" if column in ("SOCKETS", "KERNEL", "PROMETHEUS") else "left")
    for item in instances:
        running = not item.get("finished", True)
        extra = [_or_dash(item.get("sockets_kernel")), _or_dash(item.get("sockets_prometheus")),
                 _time(item.get("observed_at")), _time(item.get("not_after")), str(item.get("error") or "")]
        table.add_row(
            str(item["instance"]),
            str(item.get("pool") or ""),
            phase_text(str(item["phase"])),
            _or_dash(item.get("drain_id")),
            _or_dash(item.get("sockets_remaining")),
            f"{item['rate_per_s']:g}/s" if running and item.get("rate_per_s") else "-",
            _deadline(item) if running else "-",
            _or_dash(item.get("outcome")),
            *(extra if wide else []),
            str(item.get("reason") or ""),
        )
    return table


def history_table(drains: Sequence[Json], *, wide: bool = False) -> Table:
    table = Table(title="drains, most recent first", title_justify="left")
    columns = ["DRAIN", "INSTANCE", "SOURCE", "KIND", "STARTED", "PHASE", "OUTCOME", "BEFORE", "RESET", "TOOK"]
    columns += ["ENDED", "VERIFIED BY", "REFS"] if wide else []
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in ("BEFORE", "RESET", "TOOK") else "left")
    table.add_column("REASON")
    for drain in drains:
        extra = [_time(drain.get("released_at") or (drain["updated_at"] if drain.get("finished") else None)),
                 _or_dash(drain.get("verified_by")), refs_text(drain) or "-"]
        table.add_row(
            str(drain["id"]),
            str(drain["instance"]),
            str(drain["source"]),
            str(drain["kind"]),
            rfc3339(float(drain["created_at"])),
            phase_text(str(drain["phase"])),
            _or_dash(drain.get("outcome")),
            _or_dash(drain.get("sockets_before")),
            str(drain.get("sockets_reset") or 0),
            seconds(took_s(drain)) if drain.get("finished") else "-",
            *(extra if wide else []),
            str(drain.get("reason") or ""),
        )
    return table


def timeline_table(record: Json) -> Table:
    """`drainctl show DRAIN`: each journal line of one drain with its time, phase change, step and detail."""
    drain = record["drain"]
    table = Table(title=f"drain {drain['id']} of {drain['instance']} ({drain['source']}, {drain['kind']}): "
                  f"{drain['phase']}, {drain.get('outcome') or 'no outcome yet'}", title_justify="left")
    for column in ("TIME", "+S", "PHASE", "STEP"):
        table.add_column(column, no_wrap=True, justify="right" if column == "+S" else "left")
    table.add_column("DETAIL")
    start = float(drain["created_at"])
    for line in record["journal"]:
        moved = line.get("previous") not in (None, line["phase"])
        phase = f"{line['previous']} -> {line['phase']}" if moved else str(line["phase"])
        table.add_row(rfc3339(float(line["at"]), precise=True), f"{float(line['at']) - start:.3f}", phase,
                      str(line["step"]), str(line.get("detail") or ""))
    return table


def describe_lines(status: Json, journal: Sequence[Json]) -> list[str]:
    """`drainctl status INSTANCE`: one instance, field by field, then its drain's latest journal lines."""
    drain = status.get("drain") or {}
    fields = [
        ("Instance", status["instance"]), ("Pool", status.get("pool")), ("Phase", status["phase"]),
        ("Drain", status.get("drain_id")), ("Source", status.get("source")), ("Kind", status.get("kind")),
        ("Outcome", status.get("outcome")), ("Reason", status.get("reason")),
        ("Sockets", _sockets(status)), ("Observed", _time(status.get("observed_at"))),
        ("Rate", f"{status['rate_per_s']:g}/s" if status.get("rate_per_s") else None),
        ("Started", _time(drain.get("created_at"))), ("Drain requested", _time(drain.get("drain_requested_at"))),
        ("Reset at", _time(status.get("drain_deadline_at"))), ("Release by", _time(drain.get("release_by"))),
        ("Platform deadline", _time(status.get("not_after"))), ("Released", _time(drain.get("released_at"))),
        ("Refs", refs_text(drain) or None), ("Error now", status.get("error")),
        ("Last error", drain.get("last_error")),
    ]
    lines = [f"{name + ':':<19}{_or_dash(value)}" for name, value in fields]
    if journal:
        lines += ["", f"Journal (last {len(journal)}; `drainctl show {status['drain_id']}` for all):"]
        lines += [f"  {rfc3339(float(line['at']))}  {line['phase']:<9}  {line['step']}"
                  + (f": {line['detail']}" if line.get("detail") else "") for line in journal]
    return lines


def phase_text(phase: str) -> Text:
    return Text(phase, style=PHASE_STYLES.get(phase, ""))


# --- lines ---------------------------------------------------------------------------------------------------


def progress_line(status: Json, observed_per_s: float | None, *, width: int = LINE_WIDTH) -> Text:
    """`A verifying: 120 sockets left, closing ~180/s (paced 200/s), reset in 12.3 s`, and while something
    fails, what fails first: `C forcing: agent http://... unreachable: ... (retry 3); ..., release by 1.2 s`.

    Never longer than `width` (the failure's text is cut, the counts and the deadline stay)."""
    left = status.get("sockets_remaining")
    counted = "sockets unknown" if left is None else f"{left} sockets left"
    rate = status.get("rate_per_s")
    if observed_per_s is not None:
        counted += f", closing ~{observed_per_s:.0f}/s" + (f" (paced {rate:g}/s)" if rate else "")
    elif rate and status.get("error") is None:
        counted += f", paced {rate:g}/s"
    head = Text.assemble(f"{status['instance']} ", phase_text(str(status["phase"])), ": ")
    error = status.get("error")
    if status["phase"] == "draining" and error is None:  # before the drain request: the out-of-rotation step
        kept = "" if left is None else f" ({left} sockets kept)"
        line = Text.assemble(head, f"out of rotation first{kept}, waiting for the load balancer")
    elif error is None:
        line = Text.assemble(head, f"{counted}, {_deadline(status)}")
    else:
        tail = (f"{left} left, " if left is not None else "") + _deadline(status)
        retries = int(status.get("retries") or 0)
        retrying = f" (retry {retries})" if retries else ""
        room = max(8, width - 1 - len(head) - len(tail) - len(retrying) - 2)
        failing = _cut(_compact(str(error)), room) + retrying
        line = Text.assemble(head, Text(failing, style="red"), "; ", tail)
    line.truncate(width - 1, overflow="ellipsis")
    return line


def progress_key(status: Json) -> tuple[object, ...]:
    """What makes a progress line worth printing again in a pipe: a new phase, failure or count."""
    return status.get("phase"), status.get("error"), status.get("sockets_remaining")


def submission_line(body: Json, instance: str) -> str:
    disposition, drain = body["disposition"], body.get("drain")
    if drain is None:
        return f"{instance}: request {disposition}; nothing was started"
    ident = f"drain {drain['id']}"
    if disposition == "started":
        return (f"{instance}: {ident} started ({drain['source']}): graceful at {drain['rate_per_s']:g}/s for up to "
                f"{drain['drain_deadline_s']:g} s, then what is left is reset")
    if disposition == "merged":
        joined = f"{instance}: already in {ident} ({drain['source']}, {drain['phase']}); this request joined it"
        dropped = [f"{item['flag']} {item['asked']:g} ({item['why']})" for item in body.get("not_applied") or ()]
        return joined + (f"; not applied: {'; '.join(dropped)}" if dropped else "")
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


def cancel_line(body: Json) -> str:
    drain = body["drain"]
    return f"{drain['instance']}: drain {drain['id']} cancelled ({drain['phase']}): {body['what']}"


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
        release_by, now = (status.get("drain") or {}).get("release_by"), status.get("now")
        if status.get("error") is None or release_by is None or now is None:
            return "resetting now"
        return f"gives up in {seconds(max(0.0, float(release_by) - float(now)))}"
    reset_in, platform_in = status.get("drain_deadline_in_s"), status.get("not_after_in_s")
    if reset_in is not None:
        return f"reset in {seconds(max(0.0, reset_in))}"
    if platform_in is not None:
        return f"waiting; deadline in {seconds(max(0.0, platform_in))}"
    return "-"


def _time(unix_s: object) -> str:
    return rfc3339(float(unix_s)) if isinstance(unix_s, (int, float)) else "-"


def _sockets(status: Json) -> str | None:
    left = status.get("sockets_remaining")
    if left is None:
        return None
    kernel, prometheus = status.get("sockets_kernel"), status.get("sockets_prometheus")
    return f"{left} (kernel {_or_dash(kernel)}, prometheus {_or_dash(prometheus)})"


def _compact(error: str) -> str:
    """An error as the 80-column line says it: `agent 10.0.0.7:9400 unreachable: ...` (no scheme, no slash)."""
    return re.sub(r"https?://([^/\s]+)/?", r"\1", error)


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1] + "…"


def refs_text(drain: Json) -> str:
    """A drain's platform handles: `h1, h2`, or `gcp:h1, local:h2` when they are of more than one source (a
    controller older than the `handles` field answers only `refs`)."""
    handles = drain.get("handles")
    if not handles:
        return ", ".join(drain.get("refs") or ())
    several = len({item["source"] for item in handles}) > 1
    return ", ".join(f"{item['source']}:{item['handle']}" if several else str(item["handle"]) for item in handles)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
