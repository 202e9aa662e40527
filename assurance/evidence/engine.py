"""Opening the ledger's database: driver choice, SQLite's locking, and the write transaction.

Several processes may write one ledger at once (four runs into one file, eight sign-offs on one run).
On SQLite a deferred transaction that reads the chain head and then inserts can fail at once with
"database is locked" when another writer committed in between (the busy timeout does not help a
transaction whose snapshot is stale), so every write transaction starts with ``BEGIN IMMEDIATE``:
it takes the write lock first, waiting up to ``SQLITE_BUSY_S`` for it. Reads stay deferred and, with
WAL, never wait for a writer. PostgreSQL needs no lock here: a writer that lost the race for a
sequence number gets a unique-key violation, and ``Store.append`` re-chains and retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import IntegrityError

SQLITE_BUSY_S = 60.0
"""How long a SQLite writer waits for another writer's transaction before giving up."""

_WRITE = "assure_write"
"""Execution option that makes a SQLite connection begin with ``BEGIN IMMEDIATE``."""

SEQ_CONSTRAINT = "uq_ledger_run_seq"
"""The unique constraint on (run_id, seq): violated when two writers chain onto the same head."""


def driver_url(url: str) -> str:
    """Bare ``postgresql://`` (or ``postgres://``) URLs use psycopg 3, the driver the ``postgres`` extra
    installs; SQLAlchemy alone would pick psycopg2. An explicit ``postgresql+driver://`` is kept."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare):]
    return url


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with the ledger's connection settings (raises what ``create_engine`` raises)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_S})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(driver_url(url), pool_pre_ping=True)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that commits on success; on SQLite it holds the write lock."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def is_seq_conflict(err: IntegrityError) -> bool:
    """Whether the error is another writer having taken this (run_id, seq) first."""
    text = str(err.orig)
    return SEQ_CONSTRAINT in text or "ledger.run_id, ledger.seq" in text


def _sqlite_connect(dbapi_conn, _record) -> None:
    # SQLAlchemy, not the sqlite3 module, emits BEGIN (see _sqlite_begin), so writers can ask for IMMEDIATE.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets `assure show` read while a run writes; NORMAL sync is safe with WAL.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")
