"""What a run's seals cover, and who signed them: the checks ``verify_run`` adds on top of each manifest's own.

A run is sealed twice: the evidence seal after the verdict, then a packs seal after the packs (another after
each re-render) whose ``packs`` map lists every pack rendered so far. So every PackRecord must be followed by
a packs seal that lists it, and after the last seal only sign-offs may follow. Runs sealed by older releases
have one seal (``scope`` None) with their packs after it: those packs stay uncovered, as they always were.

The functions return ``(subject, message)`` pairs of errors (the caller makes them findings), so this module
needs nothing of ``verify.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .records import ManifestRecord, PackRecord, Record
from .seal import pack_name

AFTER_LEGACY_SEAL = ("signoff", "pack", "org_profile")
"""Kinds older releases appended after their single seal (sign-offs, packs, a profile given to ``render``)."""

Problem = tuple[str, str]
"""(subject, message) of an error."""


def coverage_problems(records: Sequence[tuple[int, Record]]) -> list[Problem]:
    """Packs seals that do not list the packs before them, PackRecords no packs seal covers, and records
    other than sign-offs after the last seal. ``records``: (sequence number, record), in chain order."""
    seals = [(seq, r) for seq, r in records if isinstance(r, ManifestRecord)]
    if not seals:
        return []  # an unsealed run: verify_run reports that on its own
    problems: list[Problem] = []
    legacy = seals[0][1].scope is None
    packs_seals = [seq for seq, m in seals if m.scope == "packs"]
    evidence = None
    for seq, m in seals:
        subject = f"record {seq} (manifest)"
        if m.scope != "packs":
            evidence = m
            if m.packs:
                problems.append((subject, f"a {m.scope or 'legacy'} seal lists packs; only a packs seal does"))
            continue
        if evidence is None:
            problems.append((subject, "packs seal with no evidence seal before it"))
        elif m.complete != evidence.complete:
            problems.append((subject, f"packs seal says complete={m.complete}, its evidence seal "
                                      f"complete={evidence.complete}"))
        listed = {pack_name(r): r.digest for s, r in records if isinstance(r, PackRecord) and s < seq}
        if m.packs != listed:
            differ = sorted(n for n in set(m.packs) | set(listed) if m.packs.get(n) != listed.get(n))
            problems.append((subject, "pack digests differ from the pack records before it: " + ", ".join(differ)))
    last_seq, last = seals[-1]
    allowed = AFTER_LEGACY_SEAL if last.scope is None else ("signoff",)
    for seq, r in records:
        subject = f"record {seq} ({r.kind})"
        if isinstance(r, PackRecord):
            if not legacy and not any(s > seq for s in packs_seals):
                problems.append((subject, f"{r.regime} pack {pack_name(r)} is not covered by a packs seal"))
        elif seq > last_seq and r.kind not in allowed:
            problems.append((subject, f"{r.kind} record after the run's last seal; only sign-offs may follow it"))
    return problems


@dataclass
class Signing:
    """Whether a run's seals are signed, by which key, and whether that is the trusted one."""

    signed: Literal["signed", "unsigned", "mixed"]
    """``signed``: every seal; ``unsigned``: none; ``mixed``: some (a stripped signature: always a finding)."""
    signer_key: str | None
    """The public key (base64) of the latest signed seal."""
    key_trusted: bool | None
    """Every seal signed by the trusted key; None when no trusted key was given."""
    problems: list[Problem]


def signing(seals: Sequence[tuple[int, ManifestRecord]], trusted_key: str | None,
            require_signed: bool) -> Signing:
    """Summarise the seals' signatures. An unsigned seal is an error when a trusted key is given, signatures
    are required, or another seal of the run is signed; seals signed by two keys are an error (a later seal
    re-signed by another hand).
    Each signature's own check is ``seal.check_signature``."""
    problems: list[Problem] = []
    signed = [(seq, m) for seq, m in seals if m.signature is not None]
    for seq, m in seals:
        if m.signature is not None:
            continue
        if trusted_key or require_signed:
            why = "a trusted key was given" if trusted_key else "signatures are required (--require-signed)"
            problems.append((f"record {seq} (manifest)", f"manifest is unsigned but {why}"))
        elif signed:  # assure signs all of a run's seals with one key, or none
            problems.append((f"record {seq} (manifest)", "manifest is unsigned, but another seal of the run is "
                                                         "signed: a signature was stripped"))
    keys = {m.public_key for _, m in signed}
    if len(keys) > 1:
        problems.append((f"record {signed[-1][0]} (manifest)",
                         f"the run's seals are signed by {len(keys)} different keys: " + ", ".join(
                             sorted(str(k) for k in keys))))
    state: Literal["signed", "unsigned", "mixed"] = (
        "unsigned" if not signed else "signed" if len(signed) == len(seals) else "mixed")
    signer = signed[-1][1].public_key if signed else None
    trusted = None if trusted_key is None else (state == "signed" and keys == {trusted_key})
    return Signing(state, signer, trusted, problems)
