"""The regimes a pack can be written for: one list for the CLI, the plan, the records and the renderer.

Adding a regime is one line here and one folder ``templates/<regime>/`` with a
``pack.html``; a test checks that the two agree.
"""

from __future__ import annotations

from typing import Literal, get_args

Regime = Literal["fca", "nhs", "uk-ai"]
"""An audience a pack is written for: FCA (SS1/23, Consumer Duty, SM&CR), NHS (DCB0129/DCB0160, DTAC)
or the UK AI white-paper principles."""

REGIMES: tuple[Regime, ...] = get_args(Regime)
"""Every regime, in the order packs are rendered."""


def regime_title(regime: Regime) -> str:
    """How a pack names its regime in its title ("<title> assurance pack"): ``uk-ai`` reads "UK AI"."""
    return regime.upper().replace("-", " ")
