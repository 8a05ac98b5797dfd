"""A real PostgreSQL for tests: the Debian package's server, in a temporary directory, on a free port.

The server refuses to run as root, so as root the harness runs it as an unprivileged system user (`postgres`
when the package created it, else `nobody`) and hands the data directory to that user. Connections over TCP
need a password (scram-sha-256): the tests give the journal a password file, as an operator would; the
harness itself uses the Unix socket (trust) to create a database per test.

    server = PostgresServer.start()          # initdb, pg_ctl start
    url = server.create_database("t1")       # postgresql://drainctl@127.0.0.1:PORT/t1
    server.restart(); server.stop()

When the server is not installed, tests skip with the reason; in CI (`CI=true`) they fail (`.ci/run` installs
it with `make setup`).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "drainctl"
PASSWORD = "drainctl-test-password"  # a test server on loopback, removed after the run
_NUMBERS = itertools.count(1)


def bin_dir() -> Path | None:
    """The newest installed server's bin directory (`/usr/lib/postgresql/<version>/bin`), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def need_postgres() -> Path:
    """The bin directory; without a server, skip (outside CI) or fail (in CI)."""
    found = bin_dir()
    if found is not None:
        return found
    message = "PostgreSQL server is not installed (`make setup` installs the Debian package postgresql)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _runner() -> pwd.struct_passwd | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as (postgres, nobody)")


@dataclass
class PostgresServer:
    bin: Path
    root: Path
    port: int
    user: pwd.struct_passwd | None
    listen: str = "127.0.0.1"
    """`listen_addresses` (the box adds the stack's database host)."""
    options: str = ""
    """More server options (`-c ssl=on ...`)."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def password_file(self) -> Path:
        """A file holding the password of the `drainctl` role (what `journal_password_file:` names)."""
        return self.root / "password"

    @classmethod
    def start(cls, *, listen: str = "127.0.0.1", port: int | None = None, options: str = "") -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="drainctl-pg-"))
        server = cls(need_postgres(), root, port or _free_port(), _runner(), listen, options)
        try:
            server._init()
            server.start_again()
        except BaseException:
            server.stop()
            raise
        return server

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}" OWNER {USER}')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` over the Unix socket as the superuser; its output."""
        command = [str(self.bin / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.root),
                   "-p", str(self.port), "-U", USER, "-d", database, "-c", sql]
        return self._run(command).stdout

    def tls_files(self, cert: Path, key: Path) -> str:
        """Copies of a certificate and key the server may read (its own user, mode 0600): `options` for TLS."""
        for source, name in ((cert, "server.crt"), (key, "server.key")):
            target = self.root / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if self.user is not None:
                os.chown(target, self.user.pw_uid, self.user.pw_gid)
        return f"-c ssl=on -c ssl_cert_file={self.root / 'server.crt'} -c ssl_key_file={self.root / 'server.key'}"

    def allow(self, network: str) -> None:
        """Also accept password logins over TCP from `network` (CIDR; another network namespace's clients, whose
        packets reach our loopback listener with their own source address), from now on."""
        with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write(f"host all all {network} scram-sha-256\n")
        self.psql("SELECT pg_reload_conf()")

    def start_again(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.listen} {self.options}".strip()
        self._run([str(self.bin / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                   "-l", str(self.root / "server.log"), "-o", options])

    def stop_now(self) -> None:
        """Stop at once (`-m immediate`: like a crash, clients see their connections cut)."""
        self._run([str(self.bin / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(self.data)])

    def restart(self) -> None:
        self.stop_now()
        self.start_again()

    def stop(self) -> None:
        """Stop the server (if it runs) and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            self._run([str(self.bin / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", str(self.data)],
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _init(self) -> None:
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(PASSWORD)
        self.password_file.write_text(PASSWORD + "\n")
        self.password_file.chmod(0o600)
        if self.user is not None:
            for path in (self.root, pwfile):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions"])

    def _run(self, command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server program as the server's user; `RuntimeError` with its stderr when it fails."""
        user = self.user
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PGCONNECT_TIMEOUT": "10"}
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=self.root, env=env,
            user=user.pw_uid if user else None, group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}): {result.stderr.strip()}")
        return result


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the session (skipped, or failed in CI, without the package); removed at the end."""
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for this test, as a URL without a password (`postgres_server.password_file`)."""
    name = f"t{next(_NUMBERS)}"
    return postgres_server.create_database(name)
