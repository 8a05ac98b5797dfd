"""`-o text|wide|json|yaml` on the read commands (kubectl's habit), with `--json` kept as `-o json`.

`json` and `yaml` print the controller's answer as the API gave it (controller/api/shapes.py: times in unix
seconds, for scripts); `text` and `wide` are tables and lines for people, times in RFC 3339 with the zone.
"""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any

import typer
import yaml

from controller.core.errors import ConfigError
from controller.oncall.views import print_json


class Output(enum.StrEnum):
    TEXT = "text"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[
    Output,
    typer.Option("--output", "-o", case_sensitive=False,
                 help="text (a table), wide (more columns), json or yaml (the controller's answer)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The same as -o json.")]


def chosen(output: Output, as_json: bool) -> Output:
    """The format asked for; `--json` with another `-o` than json is a contradiction, refused."""
    if not as_json:
        return output
    if output not in (Output.TEXT, Output.JSON):
        raise ConfigError(f"--json and -o {output}: choose one")
    return Output.JSON


def machine(output: Output) -> bool:
    return output in (Output.JSON, Output.YAML)


def emit(body: Any, output: Output) -> None:
    """Print `body` as JSON or YAML (keys in the API's order)."""
    if output is Output.YAML:
        sys.stdout.write(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
        sys.stdout.flush()
    else:
        print_json(body)
