"""The ledger's schema migrations (Alembic), applied when a ``Store`` opens a database.

A database already at the newest revision is only read (one query), so opening a ledger as a writer
role that may not create tables works. A new database, or one made before migrations existed
(revision ``0001`` adopts its table), is upgraded inside one transaction that holds the write lock
(SQLite) or an advisory lock (PostgreSQL), so processes that open the same new ledger at once do
not race. A database at a revision this code does not know was written by a newer release.

``python -m assurance.evidence.dbadmin`` upgrades a ledger as its owner and prints the grants for a
PostgreSQL writer role.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from .engine import writing

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

HEAD = "0001"
"""This release's schema revision, the newest in ``migrations/versions`` (a test checks they agree).
Written out so that opening a ledger already at it needs no Alembic import (~0.4 s of every command)."""

_PG_LOCK = 0x6C656467  # "ledg": the advisory lock id that serialises migrations on PostgreSQL


class MigrationError(RuntimeError):
    """The ledger's schema cannot be brought to this release's revision."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_revisions() -> tuple[str | None, frozenset[str]]:
    """The newest revision in ``migrations/versions``, and all of them (read with Alembic)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return scripts.get_current_head(), frozenset(s.revision for s in scripts.walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The database's revision; None for a new database or one made before migrations."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_to_head(engine: Engine) -> str | None:
    """Bring the ledger to ``HEAD``; returns the revision it was at (None: none)."""
    head = HEAD
    with engine.connect() as conn:
        before = current_revision(conn)
    if before == head:
        return before
    try:
        with writing(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            before = current_revision(conn)  # another process may have migrated while we waited
            if before not in script_revisions()[1] | {None}:
                raise MigrationError(
                    f"the ledger is at schema revision {before!r}, which this release does not know "
                    f"(newest known: {head}); it was written by a newer release of assurance")
            if before != head:
                from alembic import command

                command.upgrade(_config(conn), head)
    except MigrationError:
        raise
    except RuntimeError as err:  # a revision's own check, e.g. a table named ledger that is not one
        raise MigrationError(f"cannot upgrade the ledger schema from {before or 'none'} to {head}: {err}") from None
    except SQLAlchemyError as err:
        raise MigrationError(
            f"cannot upgrade the ledger schema from {before or 'none'} to {head}: {err.__class__.__name__}: "
            f"{_first_line(err)} (a writer role cannot: run "
            "`python -m assurance.evidence.dbadmin upgrade URL` once as the table's owner)") from None
    return before


def _first_line(err: SQLAlchemyError) -> str:
    """The database's own message, without the SQL excerpt that drivers append on later lines."""
    return (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]


def writer_sql(role: str, schema: str = "public") -> list[str]:
    """Grants for an existing PostgreSQL role that may append and read the ledger, never change it
    (run as the ledger's owner after the first migration; the role itself is created by the DBA)."""
    if not role.replace("_", "").isalnum():
        raise ValueError(f"role name {role!r}: letters, digits and underscores only")
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT ON {schema}.ledger TO {role}",
        f"GRANT USAGE ON SEQUENCE {schema}.ledger_id_seq TO {role}",
        f"GRANT SELECT ON {schema}.alembic_version TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.ledger FROM {role}",
    ]
