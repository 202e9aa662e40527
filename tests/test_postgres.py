"""PostgreSQL as a real backend, and the ledger's migrations on both databases.

A throwaway server (tests/_pg.py) runs for the session; each test gets its own database. The tests
skip only when PostgreSQL is not installed at all (`.ci/run` installs it). They check: runs written
and verified on PostgreSQL; append-only enforced there by a trigger (the owner) and by grants (a
writer role); ledgers made before migrations (by the code at fc019a0, from its recorded DDL) open,
are adopted at revision 0001 without a row changing, and verify; the migrated schema is the model's.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import psycopg
import pytest
import sqlalchemy as sa
from _ledger_writers import FIXTURES, legacy_rows, sealed_run, signoff
from _pg import cluster
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from assurance.evidence import dbadmin
from assurance.evidence.migrate import HEAD, script_revisions, writer_sql
from assurance.evidence.store import LEDGER_TABLE, Store, StoreError, new_run_id
from assurance.evidence.verify import verify_run

WRITER = "assure_writer"


@pytest.fixture(scope="session")
def pg():
    return cluster()


@pytest.fixture
def pg_url(pg):
    return pg.new_database()


def dbname(url: str) -> str:
    return sa.make_url(url).database


def raw(url: str, sql: str, params=None, user: str | None = None):
    """Run one statement with psycopg directly (no Store), as ``user`` if given; returns its rows."""
    u = sa.make_url(url)
    conninfo = dict(dbname=u.database, host=u.query["host"], port=u.query["port"], user=user or u.username)
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def test_runs_are_written_and_verified_on_postgres(pg_url):
    store = Store(pg_url)
    assert store.engine.dialect.name == "postgresql" and store.migrated_from is None
    run_id = new_run_id()
    sealed_run(store, run_id, n_metrics=5)
    store.append(run_id, [signoff("J. Smith", 0)])
    report = verify_run(store, run_id, check_files=False)
    assert report.ok and report.complete and report.n_records == 10, report.findings
    assert store.resolve(run_id[:8]) == run_id and store.count(run_id) == 10
    assert [r.kind for r in store.records(run_id, kinds=["signoff"])] == ["signoff"]
    # A second open finds the schema at head and only reads.
    assert Store(pg_url).migrated_from == HEAD


def test_bare_postgresql_url_uses_psycopg(pg):
    url = pg.new_database().replace("postgresql+psycopg://", "postgresql://")
    store = Store(url)
    assert store.engine.driver == "psycopg" and store.run_ids() == []


def test_owner_cannot_update_delete_or_truncate(pg_url):
    store = Store(pg_url)
    run_id = new_run_id()
    sealed_run(store, run_id)
    for sql in ("UPDATE ledger SET payload = '{}' WHERE seq = 1", "DELETE FROM ledger WHERE seq > 2",
                "DELETE FROM ledger WHERE false", "TRUNCATE ledger"):
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
            raw(pg_url, sql)
    assert verify_run(store, run_id, check_files=False).ok and store.count(run_id) == 7


def test_writer_role_appends_and_reads_but_cannot_change(pg, pg_url):
    Store(pg_url)  # the owner creates the schema
    pg.psql(f"DO $$ BEGIN CREATE ROLE {WRITER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            user="postgres")
    for stmt in writer_sql(WRITER):
        raw(pg_url, stmt)
    writer_url = pg.url(dbname(pg_url), user=WRITER)
    store = Store(writer_url)
    run_id = new_run_id()
    sealed_run(store, run_id)
    assert verify_run(store, run_id, check_files=False).ok
    for sql in ("UPDATE ledger SET payload = '{}'", "DELETE FROM ledger", "TRUNCATE ledger",
                "ALTER TABLE ledger DISABLE TRIGGER ledger_no_delete", "DROP TABLE ledger",
                "DELETE FROM alembic_version"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw(writer_url, sql, user=WRITER)
    assert store.count(run_id) == 7


def test_writer_role_on_an_unmigrated_database_is_told_to_ask_the_owner(pg):
    url = pg.new_database()
    pg.psql(f"DO $$ BEGIN CREATE ROLE {WRITER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            user="postgres")
    pg.psql(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {WRITER}",
            database=dbname(url))
    with pytest.raises(StoreError, match=r"cannot upgrade the ledger schema from none to 0001.*dbadmin upgrade"):
        Store(pg.url(dbname(url), user=WRITER))


def test_writer_sql_refuses_odd_role_names():
    with pytest.raises(ValueError, match="letters, digits"):
        writer_sql("x; DROP TABLE ledger")


# -- ledgers made before migrations ----------------------------------------------------------------

def _legacy_sqlite(path) -> None:
    """A SQLite ledger exactly as the code at fc019a0 made and filled it."""
    db = sqlite3.connect(path)
    db.executescript((FIXTURES / "ledger_schema_fc019a0.sqlite.sql").read_text())
    rows = legacy_rows()
    db.executemany(f"INSERT INTO ledger ({', '.join(rows[0])}) VALUES ({', '.join('?' * len(rows[0]))})",
                   [tuple(r.values()) for r in rows])
    db.commit()
    db.close()


def _snapshot(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM ledger ORDER BY id"))]


def test_legacy_sqlite_ledger_is_adopted_and_verifies(tmp_path):
    path = tmp_path / "old.db"
    _legacy_sqlite(path)
    with closing(sqlite3.connect(path)) as db:
        before = db.execute("SELECT * FROM ledger ORDER BY id").fetchall()
    store = Store(str(path), create=False)
    assert store.migrated_from is None
    assert _snapshot(store.engine) == before
    run_id = legacy_rows()[0]["run_id"]
    report = verify_run(store, run_id, check_files=False)
    assert report.ok and report.complete and report.n_records == len(before), report.findings
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM ledger")
    db.close()
    store.append(run_id, [signoff("J. Smith", 0)])
    assert verify_run(store, run_id, check_files=False).ok


def test_legacy_postgres_ledger_gets_its_triggers_and_verifies(pg):
    url = pg.new_database()
    pg.psql((FIXTURES / "ledger_schema_fc019a0.postgres.sql").read_text(), database=dbname(url))
    rows = legacy_rows()
    cols = list(rows[0])
    u = sa.make_url(url)
    with psycopg.connect(dbname=u.database, host=u.query["host"], port=u.query["port"], user=u.username) as conn:
        conn.cursor().executemany(f"INSERT INTO ledger ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                                  [tuple(r[c] for c in cols) for r in rows])
    raw(url, "UPDATE ledger SET created_at = created_at WHERE false")  # that code left it unguarded
    store = Store(url)
    assert store.migrated_from is None
    run_id = rows[0]["run_id"]
    report = verify_run(store, run_id, check_files=False)
    assert report.ok and report.complete and report.n_records == len(rows), report.findings
    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
        raw(url, "DELETE FROM ledger WHERE seq = 0")


def test_a_table_named_ledger_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount REAL)")
    with pytest.raises(StoreError, match="not an evidence ledger"):
        Store(str(path))


def test_a_ledger_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Store(str(path))
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
        db.commit()
    with pytest.raises(StoreError, match="revision '0099'.*newer release"):
        Store(str(path))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrated_schema_is_the_models(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'l.db'}" if backend == "sqlite" else request.getfixturevalue("pg").new_database()
    store = Store(url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if LEDGER_TABLE in repr(d)] == []


def test_head_is_the_newest_migration_and_the_chain_is_linear():
    newest, every = script_revisions()
    assert newest == HEAD and "0001" in every


def test_dbadmin_upgrades_and_prints_grants(tmp_path, capsys):
    assert dbadmin.main(["upgrade", str(tmp_path / "a.db")]) == 0
    assert f"revision {HEAD} (was none)" in capsys.readouterr().out
    assert dbadmin.main(["writer-sql", WRITER]) == 0
    assert f"GRANT SELECT, INSERT ON public.ledger TO {WRITER};" in capsys.readouterr().out
