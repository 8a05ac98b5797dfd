"""What `pip install .` (the base install, no extras) puts on a host: packages and size on disk.

    python -m bench.install_size                 # this tree
    python -m bench.install_size --ref 356cd9e   # a commit of this repository (e.g. before the extras)

Each run makes a fresh venv in a temporary directory, installs the package there with pip's ordinary index
settings, and prints one JSON line: the distributions installed besides pip/setuptools, and the size of the
venv's site-packages in MB (10^6 bytes). Nothing is kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP = {"pip", "setuptools", "wheel"}


def measure(source: Path, workdir: Path) -> dict[str, object]:
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], check=True)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True,
                            text=True).stdout
    names = sorted(p["name"] for p in json.loads(listed) if p["name"].lower() not in BOOTSTRAP)
    site = next((venv / "lib").glob("python3*/site-packages"))
    size_b = sum(path.stat().st_size for path in site.rglob("*") if path.is_file() and not path.is_symlink())
    return {"packages": len(names), "site_packages_mb": round(size_b / 1e6, 1), "distributions": names}


def _checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="a commit of this repository instead of the working tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drainctl-install-") as tmp:
        work = Path(tmp)
        source = REPO
        if args.ref is not None:
            (work / "src").mkdir()
            source = _checkout(args.ref, work / "src")
        result = measure(source, work)
    print(json.dumps({"install_size": {"ref": args.ref or "working tree", **result}}), flush=True)


if __name__ == "__main__":
    main()
