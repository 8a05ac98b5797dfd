"""`pulumi up` entry point (Pulumi.yaml `main: infra/`): read the stack config, build the stack, export outputs."""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs this file by path from infra/; the repository root holds the `infra` and `controller` packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from controller.core.errors import ConfigError
from infra.config import from_pulumi_runtime
from infra.program import build

try:
    config = from_pulumi_runtime(stack=pulumi.get_stack())
    outputs = build(config)  # reads dist/ (infra/artifacts.py): a missing `make dist` is a ConfigError too
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None  # one line, no traceback
outputs.export()
