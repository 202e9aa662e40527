"""What every `assure` command shares: the common options and opening the evidence store or a run in it.

Kept light (typer and the console only), as the commands that only read the ledger must start fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from .console import fail
from .exit_codes import EXIT_USAGE
from .regimes import REGIMES

if TYPE_CHECKING:
    from .evidence.store import Store

DbOpt = typer.Option(None, "--db", help="Evidence store URL (default: $ASSURE_DB or sqlite:///assure-runs/evidence.db).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout.")
REGIME_HELP = " or ".join(REGIMES) + "."


def open_store(db: str | None, *, must_exist: bool = True) -> Store:
    from .evidence.store import Store, StoreError

    try:
        return Store(db, create=not must_exist)
    except StoreError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None


def open_run(db: str | None, run_id: str | None) -> tuple[Store, str]:
    """The store and the full run id for a prefix (latest when None); a usage error otherwise."""
    from .evidence.store import StoreError

    store = open_store(db)
    try:
        return store, store.resolve(run_id)
    except StoreError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
