"""A real PostgreSQL for tests: the Debian packages' `initdb` and `pg_ctl`, a throwaway cluster, a free port.

Production Dagster keeps its runs, event log and schedules in Postgres; SQLite accepts things Postgres rejects
(and the other way round), so the production instance is tested against the real server, not a stand-in.

The server refuses to run as root, so when the tests run as root the cluster belongs to an unprivileged user
(`postgres`, which the Debian package creates, else `nobody`) and the binaries run as that user through
`runuser`. It listens on a unix socket in its own folder and on 127.0.0.1 with password authentication.

Use the `postgres_url` fixture (list "tests.postgres_server" in the root conftest's `pytest_plugins`): it
gives the URL of a new, empty database on the session's server; `postgres_database` gives the same database
as host, port, user, password and name. Where PostgreSQL is not installed or does not start,
the test is skipped locally with the reason, but fails when `CI` is set: CI must never silently skip it
(`.ci/run` installs the packages).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import NoReturn

import pytest

START_TIMEOUT_S = 30
SUPERUSER = "postgres"
SERVER_USERS = ("postgres", "nobody")
SERVER_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")
"""Durability is pointless for a throwaway cluster and costs seconds on every commit-heavy test."""


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed here, or its server could not be started."""


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on the test server, as the parts an instance yaml reads from the environment."""

    host: str
    port: int
    user: str
    password: str
    db_name: str

    @property
    def url(self) -> str:
        """A SQLAlchemy URL naming psycopg2, the driver dagster-postgres is written for: since SQLAlchemy 2.1
        a bare `postgresql://` means psycopg 3, which is not installed."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{self.db_name}"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and the superuser that tests connect as."""

    host: str
    port: int
    user: str
    password: str
    bin_dir: Path

    def create_database(self, db_name: str) -> PostgresDatabase:
        _run(
            [str(self.bin_dir / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user, db_name],
            env={"PGPASSWORD": self.password},
        )
        return PostgresDatabase(self.host, self.port, self.user, self.password, db_name)


def find_bin_dir() -> Path:
    """The newest installed server's binaries: Debian keeps them off PATH, in /usr/lib/postgresql/<v>/bin."""
    candidates = sorted(
        (Path(path).parent for path in glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda folder: _version(folder.parent.name),
    )
    if candidates:
        return candidates[-1]
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(
        "no initdb under /usr/lib/postgresql/*/bin or on PATH; "
        "install it with `apt-get install -y --no-install-recommends postgresql`"
    )


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def server_user() -> str | None:
    """Who runs the server: nobody special unless we are root, which the server refuses to be."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresUnavailable(
        f"running as root, and none of the users {SERVER_USERS} exists to run the server"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """Create a cluster in a new folder, start it, yield the running server; stop it and remove the folder."""
    bin_dir = find_bin_dir()
    user = server_user()
    # Not under pytest's tmp folder: that one is private to root, and the server user must reach its files.
    root = Path(tempfile.mkdtemp(prefix="manga-pg-"))
    try:
        server = _init_and_start(root, bin_dir, user)
        try:
            yield server
        finally:
            _as_user(user, [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _init_and_start(root: Path, bin_dir: Path, user: str | None) -> PostgresServer:
    password = secrets.token_hex(16)
    (root / "pwfile").write_text(password + "\n")
    if user is not None:
        shutil.chown(root, user=user)
        shutil.chown(root / "pwfile", user=user)
    data = root / "data"
    _as_user(
        user,
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            f"--pwfile={root / 'pwfile'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        ],
    )
    port = free_port()
    options = " ".join(
        [f"-p {port}", f"-k {root}", "-c listen_addresses=127.0.0.1"] + [f"-c {s}" for s in SERVER_SETTINGS]
    )
    _as_user(
        user,
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-t",
            str(START_TIMEOUT_S),
            "-w",
            "start",
        ],
        failure_log=root / "server.log",
    )
    return PostgresServer(host="127.0.0.1", port=port, user=SUPERUSER, password=password, bin_dir=bin_dir)


def _as_user(user: str | None, command: Sequence[str], failure_log: Path | None = None) -> None:
    prefix = ["runuser", "-u", user, "--"] if user is not None else []
    try:
        _run([*prefix, *command], cwd="/")
    except PostgresUnavailable as err:
        log = failure_log.read_text(errors="replace")[-2000:] if failure_log and failure_log.exists() else ""
        raise PostgresUnavailable(f"{err}\n{log}".rstrip()) from err


def _run(command: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
    try:
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S * 2,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    except FileNotFoundError as err:
        raise PostgresUnavailable(f"{command[0]} is not installed ({err})") from err
    except subprocess.CalledProcessError as err:
        raise PostgresUnavailable(
            f"`{' '.join(command)}` failed with exit status {err.returncode}: {err.stderr.strip()}"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise PostgresUnavailable(f"`{' '.join(command)}` did not finish within {err.timeout:.0f} s") from err


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"PostgreSQL unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the whole session: a new database per test is cheap, a new cluster is not."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(start_postgres())
        except PostgresUnavailable as err:
            _skip_or_fail(str(err))
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> PostgresDatabase:
    """A new, empty database, so no test sees another's runs."""
    try:
        return postgres_server.create_database("test_" + secrets.token_hex(6))
    except PostgresUnavailable as err:
        _skip_or_fail(str(err))


@pytest.fixture
def postgres_url(postgres_database: PostgresDatabase) -> str:
    """The SQLAlchemy URL of a new, empty database."""
    return postgres_database.url
