"""The evidence ledger: one append-only table of hash-chained records.

Each row holds one typed record's canonical JSON, its SHA-256 (the record's
address), the chain digest of the row before it in the same run, and its own
chain digest. SQLite by default; any SQLAlchemy URL (PostgreSQL for teams) by
``--db`` or ``ASSURE_DB``. The schema comes from the migrations in
``migrations/`` (applied on open); on SQLite and PostgreSQL triggers refuse
UPDATE and DELETE so the ledger stays append-only even against careless tools.
Several processes may append at once: see ``engine.py`` and ``Store.append``.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy import Connection, UniqueConstraint, func, insert
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col, select

from .engine import SEQ_CONSTRAINT, SQLITE_BUSY_S, is_seq_conflict, open_engine, writing
from .hashing import PREFIX, canonical_json, json_digest, sha256_hex
from .migrate import MigrationError, upgrade_to_head
from .records import Record

GENESIS = PREFIX + "0" * 64
"""The ``prev_digest`` of a run's first row."""

RECORD_ADAPTER: TypeAdapter = TypeAdapter(Record)

DEFAULT_HOME = "assure-runs"

LEDGER_TABLE = "ledger"

APPEND_ATTEMPTS = 40
"""How often ``append`` re-chains after losing the race for a sequence number before giving up."""


class StoreError(RuntimeError):
    """The ledger cannot be used as asked (unknown run, bad URL, ...)."""


class LedgerEntry(SQLModel, table=True):
    """One row of the ledger: a record, addressed and chained."""

    __tablename__ = LEDGER_TABLE
    __table_args__ = (UniqueConstraint("run_id", "seq", name=SEQ_CONSTRAINT),)

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


class LedgerRow(NamedTuple):
    """One ledger row as plain values, read without the ORM (about 3x faster to load than ``LedgerEntry``)."""

    id: int
    run_id: str
    seq: int
    kind: str
    payload: str
    record_digest: str
    prev_digest: str
    digest: str
    created_at: str


_PLAIN = re.compile(r'[ !#-\[\]-~]*')
"""Printable ASCII without ``"`` and ``\\``: a string RFC 8785 writes as itself between quotes."""

_SAFE_INT = 2**53 - 1


def chain_digest(run_id: str, seq: int, kind: str, record_digest: str, prev: str, created_at: str) -> str:
    """The chain link: SHA-256 over the canonical JSON of the row's identity.

    Every row written or verified computes one, so the usual row (plain ASCII strings, a small
    sequence number) is written out directly, in RFC 8785's key order; anything else goes through
    the general canonical encoder. Both give the same bytes (tests/test_verify_fast.py)."""
    # The pattern is a run of allowed characters, so the joined strings match exactly when each one does.
    plain = _PLAIN.fullmatch(run_id + kind + record_digest + prev + created_at)
    if plain and type(seq) is int and 0 <= seq <= _SAFE_INT:
        body = (f'{{"created_at":"{created_at}","kind":"{kind}","prev":"{prev}","record":"{record_digest}",'
                f'"run_id":"{run_id}","seq":{seq},"v":1}}')
        return PREFIX + sha256_hex(body.encode("ascii"))
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


def make_run_dir(root: Path, run_id: str) -> Path:
    """Create the run's folder under ``root``; a StoreError naming it when that cannot be done (an
    unwritable or misplaced ``ASSURE_HOME``), raised before the run writes anything else."""
    run_dir = root / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"{run_dir}: cannot make the run's folder (set ASSURE_HOME to a writable folder): "
                         f"{err.strerror or err}") from None
    return run_dir


class Store:
    """Append and read hash-chained records."""

    def __init__(self, url: str | None = None, *, create: bool = True):
        self.url = as_url(url) if url else default_url()
        if self.url.startswith("sqlite:///"):
            db_path = Path(self.url[len("sqlite:///"):])
            if not create and not db_path.exists():
                raise StoreError(f"{db_path}: no evidence store here (set --db or ASSURE_DB)")
            if create and db_path.is_file() and not os.access(db_path, os.W_OK):
                raise StoreError(f"{db_path}: the evidence store is read-only here (a run appends to it)")
            if db_path.is_dir():
                raise StoreError(f"{db_path}: a folder, not an evidence store file (give a file path to --db)")
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:  # ASSURE_HOME under a file, or in a folder we may not write
                raise StoreError(f"{db_path.parent}: cannot make the evidence store's folder: "
                                 f"{err.strerror or err}") from None
        try:
            self.engine = open_engine(self.url)
        except Exception as err:  # bad URL or missing driver
            raise StoreError(f"cannot open evidence store {self.url!r}: {err}") from None
        try:
            self.migrated_from = upgrade_to_head(self.engine)
            """The schema revision the database was at when opened (None: new, or made before migrations)."""
        except MigrationError as err:
            raise StoreError(f"evidence store {self._shown_url()}: {err}") from None
        except SQLAlchemyError as err:  # server down, bad credentials, unreadable file, no rights
            reason = str(getattr(err, "orig", None) or err).strip()
            raise StoreError(f"cannot open evidence store {self._shown_url()}: {reason}") from None

    def _shown_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # -- writing -----------------------------------------------------------
    def append(self, run_id: str, records: Sequence[Record]) -> list[str]:
        """Append records to a run's chain in one transaction; returns their chain digests.

        Another process may append to the same run between our reading the chain head and our
        insert (eight sign-offs at once): the unique (run_id, seq) then refuses ours, and we re-read
        the head and re-chain, up to ``APPEND_ATTEMPTS`` times with a growing random pause."""
        if not records:
            return []
        bodies = [(rec.kind, canonical_json(rec.model_dump(mode="json"))) for rec in records]
        for attempt in range(APPEND_ATTEMPTS):
            try:
                with writing(self.engine) as conn:
                    rows, digests = _chain(run_id, _head(conn, run_id), bodies)
                    # executemany through Core: one statement for the batch, ~8x faster
                    # than adding ORM objects one by one on SQLite.
                    conn.execute(insert(LedgerEntry), rows)
                return digests
            except IntegrityError as err:
                if not is_seq_conflict(err):
                    raise
                _pause(attempt)
            except OperationalError as err:
                if "locked" not in str(err.orig):  # read-only file or folder, disk full, ...
                    raise StoreError(f"evidence store {self._shown_url()}: cannot append to run {run_id}: "
                                     f"{str(err.orig).strip()}; nothing was appended") from None
                raise StoreError(f"run {run_id}: the evidence store stayed locked by another writer for "
                                 f"{SQLITE_BUSY_S:.0f} s; nothing was appended") from None
        raise StoreError(f"run {run_id}: {len(records)} record(s) not appended: other writers took the next "
                         f"sequence number {APPEND_ATTEMPTS} times in a row")

    # -- reading -----------------------------------------------------------
    def entries(self, run_id: str) -> list[LedgerEntry]:
        """The run's rows in chain order, as ORM objects (see ``rows`` for reading many quickly)."""
        with Session(self.engine) as session:
            return list(session.exec(select(LedgerEntry).where(LedgerEntry.run_id == run_id).order_by(LedgerEntry.seq)))

    def rows(self, run_id: str) -> list[LedgerRow]:
        """The run's rows in chain order, as plain tuples: what ``verify`` and ``records`` read."""
        t = LedgerEntry.__table__  # type: ignore[attr-defined]
        query = sa.select(*(t.c[name] for name in LedgerRow._fields)).where(t.c.run_id == run_id).order_by(t.c.seq)
        with self.engine.connect() as conn:
            # Through the driver's own cursor: SQLAlchemy's Row objects cost about 1.5 us a row (~5% of verify).
            compiled = query.compile(dialect=conn.dialect)
            params = compiled.construct_params()
            args = tuple(params[k] for k in compiled.positiontup or ()) if compiled.positional else params
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(str(compiled), args)
                return list(map(LedgerRow._make, cursor.fetchall()))
            finally:
                cursor.close()

    def records(self, run_id: str, kinds: Iterable[str] | None = None) -> list[Record]:
        """The run's records, typed, in chain order; only those of ``kinds`` when given (read by index,
        so listing runs does not parse thousands of sample records)."""
        if kinds is None:
            return [parse_payload(e.payload) for e in self.rows(run_id)]
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


def _head(conn: Connection, run_id: str) -> tuple[int, str] | None:
    """The run's last (seq, chain digest), read inside the appending transaction; None for a new run."""
    t = LedgerEntry.__table__  # type: ignore[attr-defined]
    row = conn.execute(sa.select(t.c.seq, t.c.digest).where(t.c.run_id == run_id)
                       .order_by(t.c.seq.desc()).limit(1)).first()
    return (row[0], row[1]) if row else None


def _pause(attempt: int) -> None:
    """A random pause that grows with each lost race, so racing writers spread out (at most 0.25 s)."""
    time.sleep(random.uniform(0, min(0.25, 0.002 * 2 ** attempt)))


def _chain(run_id: str, head: tuple[int, str] | None,
           bodies: Sequence[tuple[str, bytes]]) -> tuple[list[dict], list[str]]:
    """The rows that chain ``bodies`` (kind, canonical JSON) onto ``head``, and their chain digests."""
    seq, prev = (head[0] + 1, head[1]) if head else (0, GENESIS)
    rows, digests = [], []
    for kind, payload in bodies:
        rdig = PREFIX + sha256_hex(payload)
        now = utc_now()
        dig = chain_digest(run_id, seq, kind, rdig, prev, now)
        rows.append(dict(run_id=run_id, seq=seq, kind=kind, payload=payload.decode("utf-8"),
                         record_digest=rdig, prev_digest=prev, digest=dig, created_at=now))
        digests.append(dig)
        prev, seq = dig, seq + 1
    return rows, digests
