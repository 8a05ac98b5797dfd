"""Named contexts (`--context`, the contexts file, `drainctl context list | use`), through drainctl's entry point.

What on-call would notice: each mistake in the contexts file or its use is one `drainctl:` line naming the file
and exit 2, before anything is sent; the context's URL and token file are the ones used (an unreachable one is
named with the context); `context list` marks the current one and shows where its token file is; `context use`
switches it and keeps the rest of the file. (That `--context` reaches a real controller, and which setting wins
over which, is checked against one in test_operations.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.oncall import contexts
from testbed.harness.ports import free_port
from tests.controller.api.stacks import Ran
from tests.controller.oncall.conftest import Cli
from tests.support import write_secret

FILE = """\
# on-call's controllers, through their tunnels (docs/runbook.md)
current: staging
contexts:
  production-gcp: {{url: "{gcp}", token_file: gcp.token}}
  staging: {{url: "http://127.0.0.1:9400", token_file: ~/staging.token}}
"""


def _one_line(ran: Ran, code: int = 2) -> str:
    lines = ran.stderr.strip().splitlines()
    assert ran.code == code, (ran.code, ran.stdout, ran.stderr)
    assert len(lines) == 1 and lines[0].startswith("drainctl: "), ran.stderr
    return lines[0]


def _contexts(tmp_path: Path, text: str) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "contexts.yaml"
    path.write_text(text, encoding="utf-8")
    return path, {"DRAINCTL_CONTEXTS": str(path), "HOME": str(tmp_path)}


def test_mistakes_in_the_contexts_file_are_one_line_naming_it(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    line = _one_line(cli("--context", "production-gcp", "status", env={"DRAINCTL_CONTEXTS": str(missing)}))
    assert line == (f"drainctl: --context production-gcp: no contexts file at '{missing}' "
                    "(create it or set DRAINCTL_CONTEXTS; see docs/runbook.md)")
    path, env = _contexts(tmp_path, FILE.format(gcp="http://127.0.0.1:9300"))
    line = _one_line(cli("--context", "production", "status", env=env))
    assert line == f"drainctl: --context: no context 'production' in {path} (known: production-gcp, staging)"
    cases = {
        "contexts: {a: {url: x, token_file: t}": "not valid YAML (line 2)",
        "contexts: {a: {url: 'ftp://x', token_file: t}}": "contexts.a.url: expected an http:// or https:// URL",
        "contexts: {a: {url: 'http://x'}}": "contexts.a.token_file: Field required",
        "current: b\ncontexts: {a: {url: 'http://x', token_file: t}}": "current: 'b' is not one of the contexts",
        "contexts: {a: {url: 'http://x', token_file: t, token: s3cret}}": "contexts.a.token: Extra inputs",
    }
    for text, problem in cases.items():
        path, env = _contexts(tmp_path, text)
        line = _one_line(cli("--context", "a", "status", env=env))
        assert line.startswith(f"drainctl: --context a: {path}: ") and problem in line, (text, line)
        assert "s3cret" not in line


def test_the_contexts_token_file_and_url_are_the_ones_used(cli: Cli, tmp_path: Path) -> None:
    nowhere = f"http://{free_port()}"
    path, env = _contexts(tmp_path, FILE.format(gcp=nowhere))
    line = _one_line(cli("--context", "production-gcp", "status", env=env))
    assert line == (f"drainctl: context 'production-gcp' in {path}: token_file: cannot read "
                    f"'{tmp_path / 'gcp.token'}': No such file or directory (fix the context or pass --token-file)")
    write_secret(tmp_path / "gcp.token", "a-token")
    line = _one_line(cli("--context", "production-gcp", "history", env=env), 1)
    assert f"cannot reach the controller at {nowhere}" in line
    assert line.endswith(f"(is `drainctl run` running there? context 'production-gcp' in {path})"), line
    assert "a-token" not in line
    line = _one_line(cli("status", env=env))  # no --context: the file's current (staging)
    assert f"context 'staging' in {path}: token_file: cannot read '{tmp_path / 'staging.token'}'" in line


def test_context_list_marks_the_current_one_and_use_switches_it(cli: Cli, tmp_path: Path) -> None:
    path, env = _contexts(tmp_path, FILE.format(gcp="http://127.0.0.1:9300"))
    listed = cli("context", "list", env=env)
    assert listed.code == 0, listed.stderr
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in listed.stdout.splitlines()]
    rows = {row[1]: row for row in cells if len(row) == 4 and row[2].startswith("http://")}
    assert rows == {"production-gcp": ["", "production-gcp", "http://127.0.0.1:9300", str(tmp_path / "gcp.token")],
                    "staging": ["*", "staging", "http://127.0.0.1:9400", str(tmp_path / "staging.token")]}
    used = cli("context", "use", "production-gcp", env=env)
    assert (used.code, used.stdout.strip()) == (0, f"current context: production-gcp ({path})"), used.stderr
    text = path.read_text(encoding="utf-8")
    assert text == FILE.format(gcp="http://127.0.0.1:9300").replace("current: staging", "current: production-gcp")
    line = _one_line(cli("context", "use", "prod", env=env))
    assert line == f"drainctl: no context 'prod' in {path} (known: production-gcp, staging)"
    assert path.read_text(encoding="utf-8") == text


def test_the_default_contexts_file_is_in_the_home_directory(cli: Cli, tmp_path: Path) -> None:
    default = tmp_path / ".config" / "drainctl" / "contexts.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("contexts: {}\n", encoding="utf-8")
    line = _one_line(cli("--context", "production-gcp", "status", env={"HOME": str(tmp_path)}))
    assert line == f"drainctl: --context: no context 'production-gcp' in {default} (it has none)"


def test_without_a_users_file_a_controller_vms_own_contexts_file_is_read(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a controller VM (`sudo drainctl status`), the boot script's /etc/drainctl/contexts.yaml names it."""
    system = tmp_path / "etc-contexts.yaml"
    system.write_text("contexts: {}\n", encoding="utf-8")
    monkeypatch.setattr(contexts, "SYSTEM_CONTEXTS", system)
    line = _one_line(cli("--context", "this-controller", "status", env={"HOME": str(tmp_path / "home")}))
    assert line == f"drainctl: --context: no context 'this-controller' in {system} (it has none)"
