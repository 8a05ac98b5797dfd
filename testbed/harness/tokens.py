"""Bearer tokens for the processes the harness starts: random, written to 0600 files, never printed."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_secret(path: Path, secret: str) -> None:
    """Write `secret` to `path`, created 0600 (readable by this user only)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(secret)


def new_token_file(path: Path) -> str:
    """Write a fresh random token to `path` (0600) and return it."""
    token = secrets.token_urlsafe(24)
    write_secret(path, token)
    return token
