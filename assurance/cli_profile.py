"""`assure profile ...`: the organisation profile (``report.profile``) from the command line.

``assure profile check FILE`` validates a profile as a run would (strict YAML, no unknown
fields, every type checked) and prints ``OK`` with the file's digest, or the one-line
error naming the file and the dotted field (exit 2). ``assure profile template`` prints
a commented skeleton of every field, generated from the model.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .console import fail
from .exit_codes import EXIT_USAGE

profile_app = typer.Typer(help="The organisation profile: what only the organisation can supply to the packs.",
                          no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@profile_app.command()
def check(path: Path = typer.Argument(..., help="The profile file (YAML).")) -> None:
    """Validate a profile as `assure run` would; print OK and its digest, or the error (exit 2)."""
    from .profile_file import ProfileError, load_profile

    try:
        loaded = load_profile(path)
    except ProfileError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    print(f"OK {loaded.digest}  {path}")


@profile_app.command()
def template() -> None:
    """Print a commented YAML skeleton of every profile field, with its description."""
    from .profile_template import profile_template

    print(profile_template(), end="")
