"""`pulumi up`'s entry point (infra/__main__.py, run by path from infra/) builds the stack from Pulumi's config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import REPO, stack_document

# What the Pulumi language host does, minus the engine: config in PULUMI_CONFIG (objects JSON-encoded), the
# program directory run by path, resources registered with a monitor (here the mocks the offline plan uses).
HARNESS = """
import json, os, runpy, sys
import pulumi
from pulumi.runtime import settings
sys.path.insert(0, {repo!r})
from infra.mocks import EngineLikeMonitor, RecordingMocks
config = json.load(open({config!r}))
os.environ["PULUMI_CONFIG"] = json.dumps({{k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}})
mocks = RecordingMocks()
pulumi.runtime.set_mocks(mocks, project="drainctl", stack="production", preview=False, monitor=EngineLikeMonitor(mocks))
@pulumi.runtime.test
def program():
    runpy.run_path({program!r}, run_name="__main__")
try:
    program()
except pulumi.RunError as exc:
    print(exc)
    sys.exit(3)
print(len(mocks.resources), sorted(settings.get_root_resource().outputs))
"""


def _run(tmp_path: Path, config: dict[str, object]) -> subprocess.CompletedProcess[str]:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    harness = HARNESS.format(repo=str(REPO), config=str(config_file), program=str(REPO / "infra"))
    return subprocess.run(
        [sys.executable, "-c", harness], cwd=REPO / "infra", capture_output=True, text=True, timeout=300
    )


def test_entry_point_builds_and_exports_the_routing_table(tmp_path: Path) -> None:
    result = _run(tmp_path, stack_document("production"))
    assert result.returncode == 0, result.stderr
    count, outputs = result.stdout.strip().split(" ", 1)
    assert int(count) > 100
    assert outputs == "['access', 'controllers', 'endpoints', 'routing']"


def test_entry_point_refuses_a_bad_config_with_one_line(tmp_path: Path) -> None:
    config = stack_document("production")
    config["drainctl:app"]["agent_port"] = "9100"
    result = _run(tmp_path, config)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "stack production: drainctl:app.agent_port: Input should be a valid integer"
