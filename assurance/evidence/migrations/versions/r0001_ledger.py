"""The ledger table as first released (code up to fc019a0), with its append-only triggers.

Revision ID: 0001
Revises: (none)

Ledgers made before migrations existed hold this table but no ``alembic_version``; for them this
revision checks the table has the released columns and adds only what is missing (the triggers on
PostgreSQL, where that code never made any). SQLite and PostgreSQL refuse UPDATE and DELETE (and
PostgreSQL TRUNCATE) on the table, whoever asks; other databases get the table alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COLUMNS = ["id", "run_id", "seq", "kind", "payload", "record_digest", "prev_digest", "digest", "created_at"]

SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger "
    "BEGIN SELECT RAISE(ABORT, 'the evidence ledger is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger "
    "BEGIN SELECT RAISE(ABORT, 'the evidence ledger is append-only'); END",
]

# Statement-level, so even an UPDATE or DELETE that matches no row is refused (PostgreSQL 11+).
POSTGRES_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION USING ERRCODE = 'restrict_violation', "
    "MESSAGE = 'the evidence ledger is append-only: ' || TG_OP || ' refused'; END $$",
    *[
        stmt
        for op_name, trigger in (("UPDATE", "ledger_no_update"), ("DELETE", "ledger_no_delete"),
                                 ("TRUNCATE", "ledger_no_truncate"))
        for stmt in (f"DROP TRIGGER IF EXISTS {trigger} ON ledger",
                     f"CREATE TRIGGER {trigger} BEFORE {op_name} ON ledger "
                     "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()")
    ],
]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if inspector.has_table("ledger"):
        found = [c["name"] for c in inspector.get_columns("ledger")]
        if sorted(found) != sorted(COLUMNS):
            raise RuntimeError(f"table 'ledger' exists but is not an evidence ledger (columns {found})")
    else:
        op.create_table(
            "ledger",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("run_id", sa.String(), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(), nullable=False),
            sa.Column("payload", sa.String(), nullable=False),
            sa.Column("record_digest", sa.String(), nullable=False),
            sa.Column("prev_digest", sa.String(), nullable=False),
            sa.Column("digest", sa.String(), nullable=False),
            sa.Column("created_at", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("run_id", "seq", name="uq_ledger_run_seq"),
        )
        op.create_index("ix_ledger_kind", "ledger", ["kind"])
        op.create_index("ix_ledger_run_id", "ledger", ["run_id"])
    triggers = {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}.get(bind.dialect.name, [])
    for stmt in triggers:
        op.execute(stmt)


def downgrade() -> None:
    # Dropping the ledger would destroy evidence; no migration does that.
    raise RuntimeError("the ledger's first revision cannot be reverted")
