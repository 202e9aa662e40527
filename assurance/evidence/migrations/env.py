"""Alembic's environment for the ledger: runs on the connection (already inside a locked transaction)
that ``evidence/migrate.py`` hands over in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from assurance.evidence.store import LedgerEntry

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run ledger migrations with `python -m assurance.evidence.dbadmin upgrade URL`")
context.configure(connection=connection, target_metadata=SQLModel.metadata,
                  include_name=lambda name, type_, _parent: type_ != "table" or name == LedgerEntry.__tablename__)
with context.begin_transaction():
    context.run_migrations()
