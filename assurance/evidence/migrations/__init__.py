"""Alembic migrations of the ledger schema. ``Store`` applies them on open (see ``evidence/migrate.py``);
each revision in ``versions/`` is frozen once released: its DDL is written out, never imported."""
