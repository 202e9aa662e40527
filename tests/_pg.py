"""A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster in a temporary folder,
reached only through a Unix socket in that folder (no TCP port, so parallel sessions never clash).

One server per test process (started on first use, stopped at exit); each test gets a fresh database.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user that Debian's
package creates. Tests skip only when no PostgreSQL server binaries exist at all; `.ci/run` installs them
and sets ``ASSURE_REQUIRE_POSTGRES``, which turns that skip into a failure.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

OWNER = "assure_owner"
"""The role that owns the ledger (creates tables, runs migrations)."""


def bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


@dataclass(frozen=True)
class Cluster:
    socket_dir: Path
    port: int
    bindir: Path

    def url(self, database: str = "postgres", user: str = OWNER) -> str:
        return f"postgresql+psycopg://{user}@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres", user: str = OWNER) -> str:
        """Run SQL through ``psql`` (the superuser's tool), failing loudly on any error."""
        out = subprocess.run(
            [str(self.bindir / "psql") if (self.bindir / "psql").exists() else "psql", "-X", "-q", "-v",
             "ON_ERROR_STOP=1", "-h", str(self.socket_dir), "-p", str(self.port), "-U", user, "-d", database,
             "-At", "-c", sql], capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout

    def new_database(self) -> str:
        """A fresh, empty database owned by OWNER; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f'CREATE DATABASE "{name}" OWNER {OWNER}', user="postgres")
        return self.url(name)


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@cache
def cluster() -> Cluster:
    """Start the session's server (skips the calling test when PostgreSQL is not installed)."""
    bins = bindir()
    if bins is None:
        why = "PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install postgresql"
        if os.environ.get("ASSURE_REQUIRE_POSTGRES"):  # set by .ci/run: CI must test PostgreSQL
            pytest.fail(why)
        pytest.skip(why)
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode:
        pytest.fail("PostgreSQL will not run as root, and there is no 'postgres' user to run it as")
    root = Path(tempfile.mkdtemp(prefix="assure-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(_as_server_user([str(bins / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                    "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, env=env)
    port = 5432
    opts = f"-c listen_addresses='' -c unix_socket_directories='{root}' -c port={port} -c fsync=off " \
           "-c max_connections=60"
    subprocess.run(_as_server_user([str(bins / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts,
                                    "-w", "-t", "60", "start"]), check=True, capture_output=True, env=env)

    def stop() -> None:
        subprocess.run(_as_server_user([str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    c = Cluster(root, port, bins)
    c.psql(f"CREATE ROLE {OWNER} LOGIN", user="postgres")
    return c
