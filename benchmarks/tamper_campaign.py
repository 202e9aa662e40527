"""Tampering found, measured: random single mutations of a sealed run, each on a fresh copy, checked by verify.

Builds one real sealed run per variant (Ed25519-signed, unsigned; see ``_tamper.py``), then makes
``--mutations`` random single edits (seeded) in the classes below and runs ``verify_run`` on each
(with the trusted key where the run is signed, unless the class is about leaving it out), plus
``--clean`` verifications of untouched copies. Each class is marked by the threat model of
evidence/README.md: ``detectable`` (verify must find every one) or ``undetectable-by-design`` (a hash
chain held by the attacker cannot show it without a key or a chain head held elsewhere; the packs seal
made pack swaps detectable, signed sign-offs and heads held in packs close more, issue 10 items 2 and 4).
Prints one line per class, then ``detected=N/M`` over the detectable classes and, last, ``false_alarms=K``.

    python benchmarks/tamper_campaign.py [--mutations 1300] [--clean 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]

from _tamper import (  # noqa: E402  (the path above makes tests/_report_records importable)
    VARIANTS,
    Fixture,
    Ledger,
    artifact_files,
    build_fixture,
    change_number,
    flip_file_byte,
    resign,
    signoff_statement,
)

from assurance.evidence.hashing import file_digest  # noqa: E402
from assurance.evidence.records import SignoffRecord  # noqa: E402
from assurance.evidence.seal import generate_key, load_private_key  # noqa: E402
from assurance.evidence.signoff import sign  # noqa: E402
from assurance.evidence.store import Store, utc_now  # noqa: E402

DETECTABLE, UNDETECTABLE = "detectable", "undetectable-by-design"


@dataclass
class MutationClass:
    name: str
    expect: str
    """``detectable`` or ``undetectable-by-design``."""
    weight: int
    """Share of the mutations."""
    variants: tuple[str, ...]
    edit: Callable[[random.Random, Fixture, Path], bool]
    trusted: bool = True
    """Verify with the trusted key when the run is signed."""
    roster: bool = False
    """Verify with the signer roster too (``assure verify --signers``)."""
    require_signed: bool = False
    """Verify with ``require_signed`` (``assure verify --require-signed``)."""
    why: str = ""


# -- naive edits: the chain is left as it was --------------------------------------------------------

def payload_byte_flip(rng, fx, work):
    led = Ledger(fx)
    i = rng.randrange(len(led.rows))
    text = led.rows[i]["payload"]
    j = rng.randrange(len(text))
    led.rows[i]["payload"] = text[:j] + rng.choice([c for c in "0123456789abcdefXYZ:{}" if c != text[j]]) + text[j + 1:]
    led.save(i)
    led.close()
    return True


def row_deleted_middle(rng, fx, work):
    led = Ledger(fx)
    led.delete(rng.randrange(len(led.rows) - 1))
    led.close()
    return True


def rows_reordered(rng, fx, work):
    led = Ledger(fx)
    i, j = rng.sample(range(len(led.rows)), 2)
    a, b = led.rows[i], led.rows[j]
    a["seq"], b["seq"] = b["seq"], a["seq"]
    tmp = a["seq"]
    a["seq"] = -1  # (run_id, seq) is unique: park one row while the other moves
    led.save(i)
    led.save(j)
    a["seq"] = tmp
    led.save(i)
    led.close()
    return True


def _flip_signoff(rng, fx, *, rechain: bool) -> bool:
    """Turn a sign-off's decision to its opposite; ``rechain``: recompute the chain after it as well."""
    with Ledger(fx) as led:
        i = rng.choice(led.indices("signoff"))
        led.edit(i, lambda o: {**o, "decision": "approve" if o["decision"] != "approve" else "reject"})
        if rechain:
            led.rechain(i)
        else:
            led.save(i)
    return True


def signoff_flipped_naive(rng, fx, work):
    return _flip_signoff(rng, fx, rechain=False)


def artifact_byte_flip(rng, fx, work):
    flip_file_byte(rng, rng.choice(artifact_files(fx)))
    return True


def artifact_file_deleted(rng, fx, work):
    rng.choice([p for p in artifact_files(fx) if p.parent != fx.live]).unlink()
    return True


def artifact_file_added(rng, fx, work):
    folder = rng.choice([fx.live / "base_model", fx.live / "adapter", fx.live / "adapter" / "sub"])
    (folder / f"extra-{rng.randrange(10**6)}.bin").write_bytes(rng.randbytes(rng.randrange(1, 64)))
    return True


def pack_pdf_byte_flip(rng, fx, work):
    flip_file_byte(rng, fx.live / "packs" / "fca.pdf")
    return True


# -- clever edits: digests and the chain recomputed ----------------------------------------------------

def number_rechained_sealed(rng, fx, work):
    led = Ledger(fx)
    for _ in range(50):
        i = rng.randrange(led.manifest_index)  # the evidence itself, e.g. a metric
        new = change_number(rng, led.rows[i]["payload"])
        if new is not None:
            led.set_payload(i, new)
            led.rechain(i)
            led.close()
            return True
    return False


def number_resigned_own_key(rng, fx, work):
    if not number_rechained_sealed(rng, fx, work):
        return False
    led = Ledger(fx)
    resign(fx, led, work / "attacker.pem")
    led.close()
    return True


def _strip(led: Ledger, i: int) -> None:
    led.edit(i, lambda o: {**o, "signature": None, "public_key": None})
    led.rechain(i)


def signature_stripped(rng, fx, work):
    """Every seal's signature removed, the chain recomputed: the run now reads as never signed."""
    led = Ledger(fx)
    for i in led.indices("manifest"):
        _strip(led, i)
    led.close()
    return True


def signature_stripped_one_seal(rng, fx, work):
    """One seal's signature removed (the evidence or the packs seal), the chain recomputed."""
    led = Ledger(fx)
    _strip(led, rng.choice(led.indices("manifest")))
    led.close()
    return True


def rows_deleted_after_seal(rng, fx, work):
    led = Ledger(fx)
    for _ in range(rng.randint(1, len(led.rows) - 1 - led.manifest_index)):
        led.delete(len(led.rows) - 1)
    led.close()
    return True


def signoff_forged_unsigned(rng, fx, work):
    # No trigger to drop: anyone who can write the file can append a well-chained row.
    store = Store(f"sqlite:///{fx.db}", create=False)
    store.append(fx.run_id, [SignoffRecord(name=rng.choice(["J. Smith", "Jane Doe"]), role="SMF24",
                                           decision="approve", regime="fca", signed_at=utc_now())])
    store.engine.dispose()
    return True


def signoff_forged_attacker_key(rng, fx, work):
    """A well-formed approve statement naming the run's seal and pack, signed with the attacker's own key."""
    store = Store(f"sqlite:///{fx.db}", create=False)
    who = rng.choice([("Jane Doe", "SMF24 Chief Operations"), ("R. Officer", "Chief Risk Officer")])
    store.append(fx.run_id, [signoff_statement(store, fx.run_id, load_private_key(work / "attacker.pem"),
                                               name=who[0], role=who[1], decision="approve")])
    store.engine.dispose()
    return True


def signoff_flipped_resigned(rng, fx, work):
    """A sign-off's decision flipped, its statement re-signed with the attacker's key, the chain rewritten."""
    led = Ledger(fx)
    i = rng.choice(led.indices("signoff"))
    rec = SignoffRecord.model_validate_json(led.rows[i]["payload"])
    flipped = rec.model_copy(update={"decision": "approve" if rec.decision != "approve" else "reject",
                                     "conditions": None})
    led.set_payload(i, sign(flipped, load_private_key(work / "attacker.pem")).model_dump(mode="json"))
    led.rechain(i)
    led.close()
    return True


def signoff_flipped_rechained(rng, fx, work):
    return _flip_signoff(rng, fx, rechain=True)


def _swap_pack(rng, fx, *, reseal: bool) -> bool:
    """Another PDF in the pack's place, its pack record's digest rewritten and the chain recomputed;
    ``reseal``: the packs seal's list of digests rewritten too (its signature, if any, cannot be)."""
    pdf = fx.live / "packs" / "fca.pdf"
    flip_file_byte(rng, pdf)
    digest = file_digest(pdf)
    with Ledger(fx) as led:
        i = led.indices("pack")[0]
        led.edit(i, lambda o: {**o, "digest": digest})
        if reseal:
            led.edit(led.indices("manifest")[-1], lambda o: {**o, "packs": dict.fromkeys(o["packs"], digest)})
        led.rechain(i)
    return True


def pack_swapped_rechained(rng, fx, work):
    return _swap_pack(rng, fx, reseal=False)


def pack_swapped_resealed(rng, fx, work):
    return _swap_pack(rng, fx, reseal=True)


def artifact_removed(rng, fx, work):
    target = rng.choice([fx.live / "base_model", fx.live / "adapter", fx.live / "safety.jsonl"])
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return True


S, U, BOTH = ("signed",), ("unsigned",), VARIANTS
# Where the fixture's signed sign-offs follow the seal, an edit that rewrites the chain up to the seal (or the
# pack record) is found all the same: each sign-off's statement names the seal's chain digest and the pack's
# digest. Such classes stay "undetectable-by-design" because an attacker can delete the sign-offs with it
# (rows_deleted_after_seal); their tallies show what the signed sign-offs catch.
CLASSES = [
    MutationClass("payload_byte_flip", DETECTABLE, 24, BOTH, payload_byte_flip),
    MutationClass("row_deleted_middle", DETECTABLE, 12, BOTH, row_deleted_middle),
    MutationClass("rows_reordered", DETECTABLE, 12, BOTH, rows_reordered),
    MutationClass("signoff_flipped_naive", DETECTABLE, 5, BOTH, signoff_flipped_naive),
    MutationClass("artifact_byte_flip", DETECTABLE, 14, BOTH, artifact_byte_flip),
    MutationClass("artifact_file_deleted", DETECTABLE, 6, BOTH, artifact_file_deleted),
    MutationClass("artifact_file_added", DETECTABLE, 4, BOTH, artifact_file_added),
    MutationClass("pack_pdf_byte_flip", DETECTABLE, 6, BOTH, pack_pdf_byte_flip),
    MutationClass("number_rechained_signed_trusted", DETECTABLE, 12, S, number_rechained_sealed),
    MutationClass("number_resigned_own_key_trusted", DETECTABLE, 3, S, number_resigned_own_key),
    MutationClass("signature_stripped_trusted", DETECTABLE, 2, S, signature_stripped),
    MutationClass("signature_stripped_required", DETECTABLE, 2, S, signature_stripped, trusted=False,
                  require_signed=True),
    MutationClass("signature_stripped_one_seal", DETECTABLE, 2, S, signature_stripped_one_seal, trusted=False),
    MutationClass("pack_swapped_rechained", DETECTABLE, 2, BOTH, pack_swapped_rechained),
    MutationClass("pack_swapped_resealed_signed", DETECTABLE, 2, S, pack_swapped_resealed),
    MutationClass("number_rechained_unsigned", UNDETECTABLE, 4, U, number_rechained_sealed,
                  why="no signature: whoever holds the database recomputes the whole chain"),
    MutationClass("number_resigned_own_key_untrusted", UNDETECTABLE, 2, S, number_resigned_own_key, trusted=False,
                  why="verify without --trusted-key accepts any one key (it prints which: the reader compares)"),
    MutationClass("signature_stripped_untrusted", UNDETECTABLE, 2, S, signature_stripped, trusted=False,
                  why="verify without --trusted-key or --require-signed accepts a run that was never signed "
                      "(it prints UNSIGNED)"),
    MutationClass("rows_deleted_after_seal", UNDETECTABLE, 3, BOTH, rows_deleted_after_seal,
                  why="a chain cut back to a seal is whole (found only against a later head held elsewhere); "
                      "a cut that leaves packs unsealed is found, one to the evidence seal reads INCOMPLETE"),
    # Sign-offs are signed statements (issue 10 item 2): an unsigned one beside signed ones, or an altered
    # one, is found by anyone; one signed with the attacker's own key needs the signer roster.
    MutationClass("signoff_forged_unsigned", DETECTABLE, 3, BOTH, signoff_forged_unsigned),
    MutationClass("signoff_flipped_rechained", DETECTABLE, 3, BOTH, signoff_flipped_rechained),
    MutationClass("signoff_forged_attacker_key_roster", DETECTABLE, 3, BOTH, signoff_forged_attacker_key,
                  roster=True),
    MutationClass("signoff_flipped_resigned_roster", DETECTABLE, 3, BOTH, signoff_flipped_resigned, roster=True),
    MutationClass("signoff_forged_attacker_key", UNDETECTABLE, 2, BOTH, signoff_forged_attacker_key,
                  why="without a roster (--signers) any key's signature verifies: the ledger cannot say whose"),
    MutationClass("signoff_flipped_resigned", UNDETECTABLE, 2, BOTH, signoff_flipped_resigned,
                  why="without a roster (--signers) a statement re-signed with another key verifies"),
    MutationClass("pack_swapped_resealed_unsigned", UNDETECTABLE, 2, U, pack_swapped_resealed,
                  why="no signature: whoever holds the database rewrites the packs seal too"),
    MutationClass("artifact_removed", UNDETECTABLE, 2, BOTH, artifact_removed,
                  why="an artifact no longer on disk is a warning, not an error (files may move)"),
]


@dataclass
class Tally:
    total: int = 0
    detected: int = 0
    warned: int = 0
    missed: list[int] = field(default_factory=list)
    """Seeds of the mutations of a detectable class that verify did not find (reproducers)."""


@dataclass
class Result:
    tallies: dict[str, Tally]
    clean: int
    false_alarms: int
    noops: int
    """Edits that changed nothing (not counted)."""
    seconds: float

    def detectable(self) -> tuple[int, int]:
        by = {c.name: c for c in CLASSES}
        rows = [t for n, t in self.tallies.items() if by[n].expect == DETECTABLE]
        return sum(t.detected for t in rows), sum(t.total for t in rows)

    def lines(self) -> list[str]:
        out = []
        for c in CLASSES:
            t = self.tallies[c.name]
            note = f"  MISSED seeds {t.missed[:5]}" if c.expect == DETECTABLE and t.missed else ""
            warn = f" warned={t.warned}" if c.expect == UNDETECTABLE and t.warned else ""
            out.append(f"{c.name} {t.detected}/{t.total} ({c.expect}){warn}{note}")
        n, m = self.detectable()
        out += [f"clean_copies={self.clean} no_op_edits={self.noops} seconds={self.seconds:.1f}", f"detected={n}/{m}",
                f"false_alarms={self.false_alarms}"]
        return out


def mutate_once(cls: MutationClass, fixtures: dict[str, Fixture], pristine: dict[str, str], work: Path, seed: int):
    """One mutation of ``cls`` from ``seed`` on a fresh copy; the verify report, or None when the edit left the
    copy as it was (so a no-op never counts as a miss or a detection)."""
    rng = random.Random(seed)
    fx = fixtures[rng.choice(cls.variants)]
    fx.reset()
    if not cls.edit(rng, fx, work) or fx.fingerprint() == pristine[fx.variant]:
        return None
    return fx.verify(trusted=cls.trusted, roster=cls.roster, require_signed=cls.require_signed)


def setup(work: Path) -> tuple[dict[str, Fixture], dict[str, str]]:
    """Both sealed runs, their pristine fingerprints, and the attacker's own key."""
    fixtures = {v: build_fixture(work, v) for v in VARIANTS}
    generate_key(work / "attacker.pem")
    pristine = {}
    for v, fx in fixtures.items():
        fx.reset()
        pristine[v] = fx.fingerprint()
    return fixtures, pristine


def run_campaign(work: Path, *, mutations: int, clean: int, seed: int) -> Result:
    start = time.perf_counter()
    fixtures, pristine = setup(work)
    rng = random.Random(seed)
    weights = [c.weight for c in CLASSES]
    # Every class at least once, the rest drawn by weight.
    plan = list(CLASSES) + rng.choices(CLASSES, weights=weights, k=max(0, mutations - len(CLASSES)))
    tallies = {c.name: Tally() for c in CLASSES}
    noops = 0
    for cls in plan:
        s = rng.randrange(2**32)
        report = mutate_once(cls, fixtures, pristine, work, s)
        if report is None:
            noops += 1
            continue
        t = tallies[cls.name]
        t.total += 1
        if not report.ok:
            t.detected += 1
        elif report.findings:
            t.warned += 1
        if report.ok and cls.expect == DETECTABLE:
            t.missed.append(s)
    false_alarms = 0
    for i in range(clean):
        fx = fixtures[VARIANTS[i % len(VARIANTS)]]
        fx.reset()
        false_alarms += bool(fx.verify(roster=i % 2 == 0).findings)  # with the roster every other time
    return Result(tallies, clean, false_alarms, noops, time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mutations", type=int, default=1300)
    ap.add_argument("--clean", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replay", metavar="CLASS:SEED", help="re-run one mutation and print verify's findings")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.replay:
            name, s = args.replay.split(":")
            fixtures, pristine = setup(work)
            report = mutate_once(next(c for c in CLASSES if c.name == name), fixtures, pristine, work, int(s))
            print("\n".join(f.line() for f in report.findings) if report and report.findings else "no findings")
            return
        result = run_campaign(work, mutations=args.mutations, clean=args.clean, seed=args.seed)
    for line in result.lines():
        print(line)


if __name__ == "__main__":
    main()
