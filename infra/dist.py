"""`make dist`: the drainctl wheel and the wheelhouse every VM installs from, offline (issue 12, contract C1).

The VMs never ask a package index: the stack uploads `dist/wheelhouse.tar.gz` to its own bucket / container and
the boot script checks its sha256 before installing from it with `pip install --no-index`. This module builds it:

- `dist/drainctl-<version>-py3-none-any.whl`, built with the setuptools and wheel pinned in `deploy/build.lock`
  (hash-checked) and a fixed `SOURCE_DATE_EPOCH`, so the same sources give the same wheel;
- `dist/wheelhouse.tar.gz`: top directory `wheelhouse/`, the drainctl wheel and every dependency of
  `drainctl[gcp,azure,postgres]`, binary wheels only, for the VMs' interpreter (Debian 12, x86_64, CPython 3.11,
  glibc 2.36), at the versions and hashes of `deploy/wheelhouse.lock`; the archive is byte-reproducible (sorted,
  fixed times and owners);
- `dist/wheelhouse.tar.gz.sha256`: `<hex>  wheelhouse.tar.gz` (the format `sha256sum -c` reads).

A second run with unchanged inputs does nothing. `python -m infra.dist lock` re-resolves both lock files (after a
dependency change in pyproject.toml; the build refuses a lock that no longer covers the wheel's requirements).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
WHEELHOUSE = DIST / "wheelhouse.tar.gz"
WHEELHOUSE_SHA256 = DIST / "wheelhouse.tar.gz.sha256"
LOCK = REPO / "deploy" / "wheelhouse.lock"
BUILD_LOCK = REPO / "deploy" / "build.lock"
EXTRAS = "gcp,azure,postgres"
"""The extras a VM may install: `gcp` (sources.gcp), `azure` (managed identity), `postgres` (the shared journal)."""
BUILD_REQUIREMENTS = ("setuptools>=69,<81", "wheel>=0.43")
TOP = "wheelhouse"
"""The archive's top-level directory."""

_WORK = DIST / ".build"
_GLIBC_MINOR = 36
"""Debian 12 ships glibc 2.36: manylinux wheels up to manylinux_2_36 run there."""
TARGET = (
    "--only-binary=:all:",
    "--implementation", "cp",
    "--python-version", "3.11",
    "--abi", "cp311",
    *(flag for minor in range(_GLIBC_MINOR, 4, -1) for flag in ("--platform", f"manylinux_2_{minor}_x86_64")),
    "--platform", "manylinux2014_x86_64",
)
"""pip's target flags for the VMs' interpreter (pip does not widen a `manylinux_2_X` tag itself, so each is named)."""
_SOURCES = ("controller", "testbed")
SOURCE_DATE_EPOCH = "315532800"
"""1980-01-01, the earliest time a zip entry holds: the wheel's bytes depend on its content only, so a commit that
changes no packaged file (controller/, testbed/, pyproject.toml, README.md: the long description) ships the same
wheelhouse and rolls no VM."""


class DistError(Exception):
    """A build step failed; the message says which and what to do."""


def version() -> str:
    document = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return str(document["project"]["version"])


def wheel_path() -> Path:
    return DIST / f"drainctl-{version()}-py3-none-any.whl"


def build() -> bool:
    """Build what is out of date; True if anything was built."""
    digest = _inputs_digest()
    stamp = _WORK / "inputs.sha256"
    outputs = (wheel_path(), WHEELHOUSE, WHEELHOUSE_SHA256)
    if all(path.exists() for path in outputs) and stamp.exists() and stamp.read_text() == digest:
        return False
    if not LOCK.exists() or not BUILD_LOCK.exists():
        raise DistError(f"{LOCK.relative_to(REPO)} or {BUILD_LOCK.relative_to(REPO)} is missing: run "
                        "`python -m infra.dist lock`")
    python = _build_env()
    wheel = _build_wheel(python)
    deps = _download(LOCK)
    staged = _stage(wheel, deps)
    _check_offline(staged)
    data = _archive(staged)
    WHEELHOUSE.write_bytes(data)
    WHEELHOUSE_SHA256.write_text(f"{hashlib.sha256(data).hexdigest()}  {WHEELHOUSE.name}\n")
    stamp.write_text(digest)
    return True


def lock() -> None:
    """Re-resolve deploy/build.lock and deploy/wheelhouse.lock (needs the package index)."""
    BUILD_LOCK.write_text(_lock_text(_resolve(BUILD_REQUIREMENTS, target=False), "the wheel's build backend"))
    shutil.rmtree(_WORK, ignore_errors=True)
    wheel = _build_wheel(_build_env())
    resolved = [path for path in _resolve([f"{wheel}[{EXTRAS}]"], target=True) if not path.name.startswith("drainctl-")]
    LOCK.write_text(_lock_text(resolved, f"drainctl[{EXTRAS}] on Debian 12 x86_64 CPython 3.11"))


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    files = [REPO / "pyproject.toml", REPO / "README.md", LOCK, BUILD_LOCK, Path(__file__)]  # README: the metadata
    for top in _SOURCES:
        files += sorted(p for p in (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"(missing)")
    return digest.hexdigest()


def _build_env() -> Path:
    """A venv holding exactly the locked build backend (setuptools, wheel), hash-checked."""
    venv = _WORK / "build-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".lock.sha256"
    wanted = hashlib.sha256(BUILD_LOCK.read_bytes()).hexdigest() if BUILD_LOCK.exists() else ""
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], "create the build venv")
    locked = ["--require-hashes", "-r", str(BUILD_LOCK)]
    requirements = locked if BUILD_LOCK.exists() else list(BUILD_REQUIREMENTS)
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
         "install the build backend")
    stamp.write_text(wanted)
    return python


def _build_wheel(python: Path) -> Path:
    out = _WORK / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools reuses build/lib: a deleted module would stay
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    _run([str(python), "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
          "--no-build-isolation", "-w", str(out), str(REPO)], "build the drainctl wheel", env=env)
    shutil.rmtree(REPO / "build", ignore_errors=True)
    (wheel,) = out.glob("drainctl-*.whl")
    DIST.mkdir(exist_ok=True)
    shutil.copy2(wheel, wheel_path())
    return wheel_path()


def _download(lock_file: Path) -> Path:
    """The locked dependencies' wheels (hash-checked by pip), cached per lock file content."""
    out = _WORK / "deps"
    stamp = out / ".lock.sha256"
    wanted = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return out
    shutil.rmtree(out, ignore_errors=True)
    _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
          "--require-hashes", *TARGET, "-d", str(out), "-r", str(lock_file)], "download the locked wheels")
    stamp.write_text(wanted)
    return out


def _stage(wheel: Path, deps: Path) -> Path:
    staged = _WORK / TOP
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for path in [wheel, *deps.glob("*.whl")]:
        shutil.copy2(path, staged / path.name)
    return staged


def _check_offline(staged: Path) -> None:
    """pip resolves `drainctl[extras]` from the staged wheels alone, for the target: the lock covers the wheel."""
    with tempfile.TemporaryDirectory() as target:
        try:
            _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--dry-run",
                  "--ignore-installed", "--no-index", "--find-links", str(staged), *TARGET, "--target", target,
                  f"drainctl[{EXTRAS}]=={version()}"], "resolve the wheelhouse offline")
        except DistError as exc:
            raise DistError(f"{exc}\n{LOCK.relative_to(REPO)} no longer covers drainctl[{EXTRAS}]'s requirements: "
                            "run `python -m infra.dist lock` and commit the lock") from exc


def _archive(staged: Path) -> bytes:
    """tar.gz of `wheelhouse/`: sorted entries, time 0, root-owned, 0644, no gzip name or time (reproducible)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_entry(TOP, tarfile.DIRTYPE, 0o755))
        for path in sorted(staged.glob("*.whl")):
            data = path.read_bytes()
            info = _entry(f"{TOP}/{path.name}", tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _resolve(requirements: Sequence[str], *, target: bool) -> list[Path]:
    out = Path(tempfile.mkdtemp(prefix="drainctl-lock-"))
    flags = TARGET if target else ("--only-binary=:all:",)
    _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", *flags, "-d", str(out),
          *requirements], "resolve " + " ".join(requirements))
    return sorted(out.glob("*.whl"))


def _lock_text(wheels: Iterable[Path], what: str) -> str:
    from packaging.utils import parse_wheel_filename  # a build tool's import: `make plan` never needs it

    lines = [
        f"# {what}: exact versions and sha256 of the wheels (pip --require-hashes).",
        "# Generated by `python -m infra.dist lock`; do not edit by hand.",
    ]
    for path in sorted(wheels, key=lambda p: parse_wheel_filename(p.name)[0]):
        name, wheel_version, _, _ = parse_wheel_filename(path.name)
        lines.append(f"{name}=={wheel_version} --hash=sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}")
    return "\n".join(lines) + "\n"


def _run(command: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=1800)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DistError(f"cannot {what}: " + (detail[-1] if detail else f"exit {result.returncode}"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["lock"]:
            lock()
            print(f"dist: wrote {LOCK.relative_to(REPO)} and {BUILD_LOCK.relative_to(REPO)}")
            return 0
        if args:
            print("usage: python -m infra.dist [lock]", file=sys.stderr)
            return 2
        built = build()
    except DistError as exc:
        print(f"drainctl dist: {exc}", file=sys.stderr)
        return 1
    sha = WHEELHOUSE_SHA256.read_text().split()[0]
    print(f"dist: {wheel_path().name}, {WHEELHOUSE.name} sha256 {sha[:16]}{'' if built else ' (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
