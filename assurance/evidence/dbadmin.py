"""Ledger administration from the shell, for whoever owns a shared (PostgreSQL) ledger.

    python -m assurance.evidence.dbadmin upgrade [URL]      # bring the schema to this release's revision
    python -m assurance.evidence.dbadmin writer-sql ROLE    # grants for an append-only writer role

Opening a ledger with any ``assure`` command also upgrades it, but a writer role may not change the
schema: after a release with a new revision, the owner runs ``upgrade`` once.
"""

from __future__ import annotations

import argparse

from .migrate import HEAD, writer_sql
from .store import Store, StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assurance.evidence.dbadmin",
                                     description="Ledger schema and PostgreSQL roles.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="upgrade the ledger schema to this release's revision")
    up.add_argument("url", nargs="?", help="ledger URL or SQLite path (default: ASSURE_DB, else ./assure-runs)")
    grants = sub.add_parser("writer-sql", help="print the SQL granting ROLE append and read, never change")
    grants.add_argument("role")
    args = parser.parse_args(argv)
    if args.command == "writer-sql":
        try:
            print(";\n".join(writer_sql(args.role)) + ";")
        except ValueError as err:
            parser.error(str(err))
        return 0
    try:
        store = Store(args.url)
    except StoreError as err:
        print(f"error: {err}")
        return 2
    shown = store.engine.url.render_as_string(hide_password=True)
    print(f"{shown}: ledger schema at revision {HEAD} (was {store.migrated_from or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
