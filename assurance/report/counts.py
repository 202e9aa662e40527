"""How many records a pack rests on, stated once so that every number a pack prints agrees.

A run's ledger keeps growing after the seal: the manifest itself, the packs rendered from it
and the sign-offs people add. A pack that printed "records read: 5,277" beside "5,274 records
sealed" without a word left a reviewer wondering what the other three were. ``record_counts``
names them, kind by kind, from the records in ledger order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from assurance.evidence.records import ManifestRecord, Record

__all__ = ["RecordCounts", "record_counts"]

# How a kind of record added after the seal reads in the sentence (singular, plural).
_AFTER_SEAL_WORDS = {
    "manifest": ("the manifest itself", "the manifest itself and later manifests"),
    "pack": ("pack record of a pack rendered earlier", "pack records of packs rendered earlier"),
    "signoff": ("sign-off added after the seal", "sign-offs added after the seal"),
}


@dataclass(frozen=True)
class RecordCounts:
    """The record counts a pack states: sealed, read at rendering, and what lies between."""

    read: int
    """Records of this run the ledger held when the pack was rendered (every one was read)."""
    sealed: int | None
    """Records the manifest sealed (those before it); None when the run was never sealed."""
    before_seal: int | None
    """Records found before the (first) manifest; equal to ``sealed`` unless the ledger was altered."""
    after_seal: dict[str, int] = field(default_factory=dict)
    """Record kind -> how many records of that kind follow the first manifest (the manifest included)."""

    @property
    def consistent(self) -> bool:
        """Whether the records before the seal are as many as the manifest says it sealed."""
        return self.sealed is None or self.sealed == self.before_seal

    @property
    def explanation(self) -> str:
        """One sentence a reviewer can read beside the numbers."""
        if self.sealed is None:
            return (f"The run was never sealed; the ledger held {self.read:,} record{_s(self.read)} of this run "
                    f"when this pack was rendered, and this pack read all of them.")
        parts = []
        for kind, n in self.after_seal.items():
            one, many = _AFTER_SEAL_WORDS.get(kind, (f"{kind} record added after the seal",
                                                     f"{kind} records added after the seal"))
            parts.append(one if kind == "manifest" and n == 1 else f"{n:,} {one if n == 1 else many}")
        text = (f"The manifest sealed {self.sealed:,} record{_s(self.sealed)}; when this pack was rendered the "
                f"ledger held {self.read:,} record{_s(self.read)} of this run: ")
        if self.consistent:
            text += f"the {self.sealed:,} sealed, " + _join(parts) + "."
        else:
            text += (f"{self.before_seal:,} before the manifest, which does not match the number it sealed "
                     f"(run assure verify), then " + _join(parts) + ".")
        return text


def record_counts(records: Sequence[Record]) -> RecordCounts:
    """Count a run's records (in ledger order, as ``render_pack`` is given them)."""
    first = next((i for i, r in enumerate(records) if isinstance(r, ManifestRecord)), None)
    if first is None:
        return RecordCounts(read=len(records), sealed=None, before_seal=None)
    manifest = records[first]
    assert isinstance(manifest, ManifestRecord)
    after = Counter(str(getattr(r, "kind", type(r).__name__)) for r in records[first:])
    # The manifest first, then the kinds in the order the sentence reads best, then anything else.
    order = [k for k in _AFTER_SEAL_WORDS if k in after] + sorted(k for k in after if k not in _AFTER_SEAL_WORDS)
    return RecordCounts(read=len(records), sealed=manifest.n_records, before_seal=first,
                        after_seal={k: after[k] for k in order})


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
