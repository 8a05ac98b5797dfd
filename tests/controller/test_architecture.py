"""The composition root and the engine name no platform: adding one is a package plus a line in the registry.

import-linter (`.importlinter`) already refuses imports across these lines; this test also catches a platform
named in code (a `"kubernetes"` string, an `if source == "gcp"` branch, a `kube` attribute), which no import
contract sees. Docstrings and comments may mention platforms as examples.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core import notices, operator
from controller.platforms import PLATFORMS
from tests.support.paths import REPO_ROOT

CONTROLLER = REPO_ROOT / "controller"
PLATFORM_FREE = [CONTROLLER / "app.py", *sorted((CONTROLLER / "engine").glob("*.py"))]
# Operator intents and agent notices are core rules (controller/core), so their source names are not plugins' names.
CORE_SOURCES = {operator.SOURCE, notices.SOURCE}
NAMES = sorted({p.name for p in PLATFORMS} - CORE_SOURCES | {"azure", "aws", "k8s", "kube", "pod", "finalizer"})


def words_in_code(path: Path) -> Iterator[tuple[int, str]]:
    """Identifiers, attribute names and string constants of a module, without its docstrings (every string that
    stands alone as a statement: a module's, a class's, a function's or an attribute's)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.alias):
            yield node.lineno, node.asname or node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


@pytest.mark.parametrize("path", PLATFORM_FREE, ids=lambda p: str(p.relative_to(CONTROLLER)))
def test_the_root_and_the_engine_name_no_platform(path: Path) -> None:
    pattern = re.compile(rf"(?<![a-z])({'|'.join(NAMES)})(?![a-z])", re.IGNORECASE)
    found = [f"line {line}: {word!r}" for line, word in words_in_code(path) if pattern.search(word.replace("_", " "))]
    assert found == [], f"{path.name} names a platform: {found}"


def test_every_package_is_registered_once_and_works_without_its_section() -> None:
    packages = {p.name for p in (CONTROLLER / "platforms").iterdir() if (p / "__init__.py").exists()}
    assert len(PLATFORMS) == len(packages) == len({p.name for p in PLATFORMS})
    for platform in PLATFORMS:
        platform.settings.model_validate({})  # a controller.yaml without the section still loads
