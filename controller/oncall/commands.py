"""The on-call commands themselves: `drainctl drain | status | history | show | reset | cancel`.

Each one parses its flags, asks the controller's API, prints a table, a line or the answer (`-o json|yaml`,
`--json`), and exits 0 (done), 1 (the operation failed) or 2 (a usage or config error). Errors are raised as our
own types and turned into one line and an exit code by `controller.cli.main`. Defaults that depend on the
controller (the budget's) are named in the help with `show_default`, not in brackets that rich would eat.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from controller.core.errors import ConfigError, PermanentError
from controller.oncall import views
from controller.oncall.client import ControllerClient
from controller.oncall.connecting import (
    DEFAULT_CONTROLLER,
    DEFAULT_TOKEN_FILE,
    ControllerOption,
    TokenFileOption,
    connect,
)
from controller.oncall.output import JsonOption, Output, OutputOption, chosen, emit, machine
from controller.oncall.waiting import follow

DESCRIBE_LINES = 10
"""`drainctl status INSTANCE` shows this many of the drain's latest journal lines."""
SUCCESSFUL_OUTCOMES = frozenset({"graceful", "forced"})


def drain(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="The instance to drain, as the controller's inventory names it.")],
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="Seconds of graceful drain before what is left is reset.",
                     show_default="the budget's drain_deadline_s"),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Disconnects per second.",
                                   show_default="the budget's drain_rate_per_s")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the drain until it ends; exit 1 if it failed.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")
    ] = False,
    as_json: JsonOption = False,
    controller: ControllerOption = DEFAULT_CONTROLLER,
    token_file: TokenFileOption = DEFAULT_TOKEN_FILE,
) -> None:
    """Drain INSTANCE gracefully, then reset what is left at the deadline (or when the drain stops moving)."""
    _positive("--deadline", deadline)
    _positive("--rate", rate)
    with connect(ctx) as client:
        body = client.drain(instance, deadline_s=deadline, rate_per_s=rate, dry_run=dry_run)
        if dry_run:
            _show(body, as_json, lambda: views.dry_run_lines(body))
            return
        if not wait or body.get("drain") is None or body["disposition"] == "stale":
            _show(body, as_json, lambda: [views.submission_line(body, instance)])
            raise typer.Exit(1 if body["disposition"] == "stale" or body.get("drain") is None else 0)
        if not as_json:
            views.console().print(views.submission_line(body, instance))
        raise typer.Exit(_wait(client, instance, int(body["drain"]["id"]), as_json=as_json))


def status(
    ctx: typer.Context,
    instance: Annotated[
        str | None, typer.Argument(help="One instance, described field by field with its latest journal lines.")
    ] = None,
    output: OutputOption = Output.TEXT,
    as_json: JsonOption = False,
    controller: ControllerOption = DEFAULT_CONTROLLER,
    token_file: TokenFileOption = DEFAULT_TOKEN_FILE,
) -> None:
    """Every instance the controller knows (or INSTANCE), with its latest drain: phase, sockets, time to reset."""
    form = chosen(output, as_json)
    with connect(ctx) as client:
        if instance is not None:
            one = client.instance(instance)
            journal = client.drain_record(int(one["drain_id"]))["journal"] if one.get("drain_id") else []
        else:
            instances = client.instances()
    if instance is not None:
        if machine(form):
            emit(one, form)
            return
        for line in views.describe_lines(one, journal[-DESCRIBE_LINES:]):
            views.console().print(line)
    elif machine(form):
        emit({"instances": instances}, form)
    else:
        views.console(wide=form is Output.WIDE).print(views.status_table(instances, wide=form is Output.WIDE))


def history(
    ctx: typer.Context,
    output: OutputOption = Output.TEXT,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many drains to show.")] = 20,
    instance: Annotated[str | None, typer.Option("--instance", help="Only this instance's drains.")] = None,
    controller: ControllerOption = DEFAULT_CONTROLLER,
    token_file: TokenFileOption = DEFAULT_TOKEN_FILE,
) -> None:
    """Past and running drains, most recent first: outcome, sockets before and reset, how long they took."""
    form = chosen(output, as_json)
    with connect(ctx) as client:
        drains = client.history(limit=limit, instance=instance)
    if machine(form):
        emit({"drains": drains}, form)
    else:
        views.console(wide=form is Output.WIDE).print(views.history_table(drains, wide=form is Output.WIDE))


def show(
    ctx: typer.Context,
    drain: Annotated[int, typer.Argument(help="The drain's id (the DRAIN column of status and history).", min=1)],
    output: OutputOption = Output.TEXT,
    as_json: JsonOption = False,
    controller: ControllerOption = DEFAULT_CONTROLLER,
    token_file: TokenFileOption = DEFAULT_TOKEN_FILE,
) -> None:
    """The journal of one drain as a timeline: each step with its time, phase change and detail."""
    form = chosen(output, as_json)
    with connect(ctx) as client:
        record = client.drain_record(drain)
    if machine(form):
        emit(record, form)
        return
    out = views.console()
    out.print(views.timeline_table(record))
    ended = record["drain"]
    if ended.get("finished"):
        out.print(views.outcome_line(ended))


def cancel(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="The instance whose running drain to cancel.")],
    as_json: JsonOption = False,
    controller: ControllerOption = DEFAULT_CONTROLLER,
    token_file: TokenFileOption = DEFAULT_TOKEN_FILE,
) -> None:
    """Cancel INSTANCE's running drain before any reset (refused once its reset has begun).

    Nothing more is done to the host; a platform's notice is left to its deadline (released then)."""
    with connect(ctx) as client:
        body = client.cancel(instance)
    _show(body, as_json, lambda: [views.cancel_line(body)])


def reset(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="The instance whose sockets to reset.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
    controller: ControllerOption = DEFAULT_CONTROLLER,
    token_file: TokenFileOption = DEFAULT_TOKEN_FILE,
) -> None:
    """Reset every socket of INSTANCE now with TCP RSTs (clients reconnect elsewhere); a running drain is forced."""
    if not yes and not sys.stdin.isatty():
        raise ConfigError(f"refusing to reset {instance} without confirmation: no terminal to ask on; pass --yes")
    with connect(ctx) as client:
        if not yes:
            _confirm(client, instance)
        body = client.reset(instance)
    _show(body, as_json, lambda: [views.reset_line(body)])
    if not body["done"]:
        raise typer.Exit(1)


def _wait(client: ControllerClient, instance: str, drain_id: int, *, as_json: bool) -> int:
    record = follow(client, instance, drain_id, console=None if as_json else views.console())
    drain = record["drain"]
    _show(record, as_json, lambda: [views.outcome_line(drain)])
    ok = drain["phase"] == "released" and drain.get("outcome") in SUCCESSFUL_OUTCOMES
    return 0 if ok else 1


def _confirm(client: ControllerClient, instance: str) -> None:
    current = client.instance(instance)
    left = current.get("sockets_remaining")
    counted = f"{left} sockets at the last count, " if left is not None else ""
    question = f"Reset every socket of {instance} now with TCP RSTs ({counted}phase {current['phase']})?"
    if not typer.confirm(question, default=False):
        raise PermanentError(f"reset of {instance} not confirmed; nothing was done")


def _show(body: dict[str, Any], as_json: bool, lines: Callable[[], Sequence[str]]) -> None:
    if as_json:
        views.print_json(body)
        return
    out = views.console()
    for line in lines():
        out.print(line)


def _positive(flag: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{flag}: must be a positive number of {'seconds' if flag == '--deadline' else 'per second'},"
                          f" got {value:g}")
