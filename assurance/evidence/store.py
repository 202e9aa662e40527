"""The evidence ledger: one append-only table of hash-chained records.

Each row holds one typed record's canonical JSON, its SHA-256 (the record's
address), the chain digest of the row before it in the same run, and its own
chain digest. SQLite by default; any SQLAlchemy URL (PostgreSQL for teams) by
``--db`` or ``ASSURE_DB``. On SQLite, triggers refuse UPDATE and DELETE so the
ledger stays append-only even against careless tools.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy import UniqueConstraint, event, func, insert, text
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from .hashing import PREFIX, canonical_json, json_digest, sha256_hex
from .records import Record

GENESIS = PREFIX + "0" * 64
"""The ``prev_digest`` of a run's first row."""

RECORD_ADAPTER: TypeAdapter = TypeAdapter(Record)

DEFAULT_HOME = "assure-runs"

LEDGER_TABLE = "ledger"


class StoreError(RuntimeError):
    """The ledger cannot be used as asked (unknown run, bad URL, ...)."""


class LedgerEntry(SQLModel, table=True):
    """One row of the ledger: a record, addressed and chained."""

    __tablename__ = LEDGER_TABLE
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_ledger_run_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    """The run the record belongs to (UUIDv7, sorts by time)."""
    seq: int
    """Position in the run's chain, from 0."""
    kind: str = Field(index=True)
    """The record's ``kind``."""
    payload: str
    """The record's RFC 8785 canonical JSON."""
    record_digest: str
    """``sha256:`` of ``payload``: the record's address."""
    prev_digest: str
    """Chain digest of the previous row of this run (GENESIS for seq 0)."""
    digest: str
    """Chain digest of this row; see ``chain_digest``."""
    created_at: str
    """UTC time of appending, ISO 8601."""


def chain_digest(run_id: str, seq: int, kind: str, record_digest: str, prev: str, created_at: str) -> str:
    """The chain link: SHA-256 over the canonical JSON of the row's identity."""
    return json_digest({
        "v": 1, "run_id": run_id, "seq": seq, "kind": kind, "record": record_digest, "prev": prev,
        "created_at": created_at,
    })


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit millisecond time, then random bits; sorts by time."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms << 80) | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def default_url() -> str:
    """``ASSURE_DB`` if set, else a SQLite file under ``ASSURE_HOME`` (default ``./assure-runs``)."""
    if os.environ.get("ASSURE_DB"):
        return as_url(os.environ["ASSURE_DB"])
    home = Path(os.environ.get("ASSURE_HOME", DEFAULT_HOME))
    return f"sqlite:///{(home / 'evidence.db').resolve()}"


def as_url(value: str) -> str:
    """A database URL; a plain file path means a SQLite file there."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def runs_home() -> Path:
    """Folder for run artifacts (adapters, packs): ``ASSURE_HOME`` or ``./assure-runs``."""
    return Path(os.environ.get("ASSURE_HOME", DEFAULT_HOME)).resolve()


_APPEND_ONLY = [
    "CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger "
    "BEGIN SELECT RAISE(ABORT, 'the evidence ledger is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger "
    "BEGIN SELECT RAISE(ABORT, 'the evidence ledger is append-only'); END",
]


class Store:
    """Append and read hash-chained records."""

    def __init__(self, url: str | None = None, *, create: bool = True):
        self.url = as_url(url) if url else default_url()
        if self.url.startswith("sqlite:///"):
            db_path = Path(self.url[len("sqlite:///"):])
            if not create and not db_path.exists():
                raise StoreError(f"{db_path}: no evidence store here (set --db or ASSURE_DB)")
            db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(self.url)
        except Exception as err:  # bad URL or missing driver
            raise StoreError(f"cannot open evidence store {self.url!r}: {err}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        SQLModel.metadata.create_all(self.engine, tables=[SQLModel.metadata.tables[LEDGER_TABLE]])
        if self.engine.dialect.name == "sqlite":
            with self.engine.begin() as conn:
                for stmt in _APPEND_ONLY:
                    conn.execute(text(stmt))

    # -- writing -----------------------------------------------------------
    def append(self, run_id: str, records: Sequence[Record]) -> list[str]:
        """Append records to a run's chain in one transaction; returns their chain digests."""
        if not records:
            return []
        with Session(self.engine) as session:
            last = session.exec(
                select(LedgerEntry).where(LedgerEntry.run_id == run_id).order_by(col(LedgerEntry.seq).desc()).limit(1)
            ).first()
            seq = last.seq + 1 if last else 0
            prev = last.digest if last else GENESIS
            rows, digests = [], []
            for rec in records:
                payload = canonical_json(rec.model_dump(mode="json"))
                rdig = PREFIX + sha256_hex(payload)
                now = utc_now()
                dig = chain_digest(run_id, seq, rec.kind, rdig, prev, now)
                rows.append(
                    dict(run_id=run_id, seq=seq, kind=rec.kind, payload=payload.decode("utf-8"),
                         record_digest=rdig, prev_digest=prev, digest=dig, created_at=now)
                )
                digests.append(dig)
                prev, seq = dig, seq + 1
            # executemany through Core: one statement for the batch, ~8x faster
            # than adding ORM objects one by one on SQLite.
            session.execute(insert(LedgerEntry), rows)
            session.commit()
        return digests

    # -- reading -----------------------------------------------------------
    def entries(self, run_id: str) -> list[LedgerEntry]:
        with Session(self.engine) as session:
            return list(session.exec(select(LedgerEntry).where(LedgerEntry.run_id == run_id).order_by(LedgerEntry.seq)))

    def records(self, run_id: str, kinds: Iterable[str] | None = None) -> list[Record]:
        """The run's records, typed, in chain order; only those of ``kinds`` when given (read by index,
        so listing runs does not parse thousands of sample records)."""
        if kinds is None:
            return [parse_payload(e.payload) for e in self.entries(run_id)]
        with Session(self.engine) as session:
            rows = session.exec(select(LedgerEntry.payload).where(
                LedgerEntry.run_id == run_id, col(LedgerEntry.kind).in_(list(kinds))).order_by(LedgerEntry.seq))
            return [parse_payload(p) for p in rows]

    def run_ids(self) -> list[str]:
        """Every run id, oldest first (UUIDv7 sorts by time)."""
        with Session(self.engine) as session:
            ids = session.exec(select(LedgerEntry.run_id).where(LedgerEntry.seq == 0)).all()
        return sorted(ids)

    def resolve(self, run: str | None) -> str:
        """A full run id from a prefix, or the latest run when ``run`` is None or ``latest``."""
        ids = self.run_ids()
        if not ids:
            raise StoreError(f"no runs in the evidence store {self.url}")
        if run in (None, "latest"):
            return ids[-1]
        matches = [i for i in ids if i.startswith(run)]
        if not matches:
            raise StoreError(f"run {run!r}: not found in {self.url}")
        if len(matches) > 1:
            raise StoreError(f"run {run!r}: ambiguous prefix ({len(matches)} runs match)")
        return matches[0]

    def count(self, run_id: str | None = None) -> int:
        with Session(self.engine) as session:
            q = select(func.count()).select_from(LedgerEntry)
            if run_id:
                q = q.where(LedgerEntry.run_id == run_id)
            return session.exec(q).one()


def parse_payload(payload: str) -> Record:
    """Parse a stored payload into its typed record (raises on schema mismatch)."""
    return RECORD_ADAPTER.validate_python(json.loads(payload))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets `assure show` read while a run writes; NORMAL sync is safe with WAL.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
