"""The one place that knows the order of the stages.

plan -> provenance -> evaluate base -> safety fine-tune -> evaluate tuned
-> verdict -> evidence seal -> packs -> packs seal.

Everything that can be checked before the run is checked first (plan, model
folder, datasets, battery), and only then is anything written, so bad input
leaves the evidence store untouched. Stages talk through evidence records;
the packs are rendered from the ledger alone. The evidence seal closes what the packs
are made from; the packs seal lists every pack's digest, so after it only sign-offs
may join the chain. A failed stage takes the same path, sealed incomplete, DRAFT packs.

Each stage appends its records in one transaction, so a killed run's chain ends
on a stage boundary; ``resume.py`` reads which stages are there and hands
``run_stages`` a ``Done`` that makes it skip them (``assure run --resume``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import __version__, stages
from .evidence.hashing import json_digest, tree_digest
from .evidence.pack_evidence import pack_attachments
from .evidence.records import (
    FinetuneRecord,
    ManifestRecord,
    MetricRecord,
    PackRecord,
    Record,
    RunFailed,
    RunStarted,
)
from .evidence.seal import SigningKeyError, key_for_run, seal_run
from .evidence.store import Store, make_run_dir, new_run_id, runs_home, utc_now
from .inputs import (
    Progress,
    SilentProgress,
    artifact_record,
    environment_record,
    input_artifacts,
    prepare,
    supplied_records,
)
from .plan import Plan
from .policy import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, decide
from .prepared import Prepared
from .report import build_view, comparison_records, render_pack
from .report.document import pack_version
from .runlock import run_lock
from .stages import Done


@dataclass
class RunResult:
    """What a finished (or failed) run tells its caller; the ledger holds the evidence."""

    run_id: str
    """The run's id (UUIDv7)."""
    status: Literal["PASS", "FAIL", "ERROR"]
    """The verdict, or ERROR when a stage failed."""
    exit_code: int
    """The process exit code for the status (``policy.EXIT_*``)."""
    store_url: str
    """The evidence store the run was recorded in."""
    run_dir: Path
    """The run's folder (adapters, checkpoints, packs)."""
    packs: dict[str, Path] = field(default_factory=dict)
    """Regime -> the rendered pack."""
    reasons: list[str] = field(default_factory=list)
    """The verdict's reasons."""
    metrics: list[MetricRecord] = field(default_factory=list)
    """Every evaluated stage's metrics, in stage order."""
    error: str | None = None
    """``<stage> failed: <error>`` when a stage failed."""


def run_pipeline(
    plan: Plan,
    *,
    store_url: str | None = None,
    plan_path: Path | None = None,
    progress: Progress | None = None,
    sign_key: Path | None = None,
    run_root: Path | None = None,
) -> RunResult:
    progress = progress or SilentProgress()
    prep = prepare(plan, progress)  # raises on bad input; nothing written yet
    ranks = prep.ranks

    # Under torchrun every rank runs the stages (they meet in DDP and the generation gathers), but only
    # rank 0 writes: the others keep their records in a ledger in memory, thrown away at the end.
    store = Store(store_url) if ranks.main else Store(FOLLOWER_LEDGER)
    run_id = ranks.share(new_run_id())
    root = run_root or runs_home()
    run_dir = make_run_dir(root, run_id) if ranks.main else root / run_id
    plan_dict = plan.model_dump(mode="json")
    try:
        store.append(run_id, [
            RunStarted(run_id=run_id, plan=plan_dict, plan_digest=json_digest(plan_dict),
                       plan_path=str(plan_path.resolve()) if plan_path else None,
                       tool_version=__version__, started_at=utc_now()),
        ])
    except BaseException:
        if ranks.main:
            run_dir.rmdir()  # still empty: a run that was never recorded leaves no folder behind
        raise
    with run_lock(run_dir, run_id) if ranks.main else nullcontext():
        result = run_stages(store, run_id, prep, run_dir, Done(), plan_path=plan_path, progress=progress,
                            sign_key=sign_key if ranks.main else None)
    # The others wait here while rank 0 renders and seals the packs (a launcher stops every rank once one
    # exits non-zero), then report rank 0's outcome: the run in the ledger is rank 0's.
    status, exit_code, error, reasons = ranks.share((result.status, result.exit_code, result.error, result.reasons))
    result.status, result.exit_code, result.error, result.reasons = status, exit_code, error, reasons
    return result


FOLLOWER_LEDGER = "sqlite://"
"""Where ranks other than 0 keep their records: a SQLite database in memory, gone with the process."""


def run_stages(store: Store, run_id: str, prep: Prepared, run_dir: Path, done: Done, *,
               plan_path: Path | None, progress: Progress, sign_key: Path | None) -> RunResult:
    """Every stage after RunStarted, in order, skipping those ``done`` says are already in the chain.

    Each stage appends its records in one transaction, so a kill leaves a stage either
    wholly recorded or not at all, and ``assure run --resume`` picks up at the first
    missing one."""
    plan = prep.plan
    result = RunResult(run_id, "ERROR", EXIT_ERROR, store.url, run_dir)
    stage = "provenance"
    try:
        judge = prep.judges[0]
        if done.provenance:
            base_art = done.artifacts.get("base_model")  # an endpoint target has none
            base_digest = base_art.digest if base_art else ""
        else:
            env = environment_record(prep)
            with progress.stage("Provenance: hashing the model, data and plan"):
                arts = input_artifacts(prep, plan_path)
            base_digest = arts[0].digest if arts else ""
            battery = stages.battery_record(prep, judge, stages.generation_settings(prep),
                                            {a.role: a.digest for a in arts})
            profile = prep.profile.records("run") if prep.profile else []
            store.append(run_id, [env, *arts, *supplied_records(prep, arts), *profile, battery])

        models = stages.Models(prep, done)

        if not plan.finetune.enabled:  # evaluate-only: the supplied baseline (if any), then the supplied target
            stage = "evaluate base"
            base = stages.evaluate_supplied(store, run_id, prep, judge, "base", done, progress)
            stage = "evaluate tuned"
            tuned = stages.evaluate_target(store, run_id, prep, judge, done, progress, earlier=base)
        else:
            stage = "evaluate base"
            base = stages.evaluate_or_reuse(store, run_id, prep, judge, "base", lambda: prep.model, done, progress,
                                            weights=(prep.model_path, None))

            stage = "safety fine-tune"
            if "safety" in done.finetune:
                ft_record = done.finetune["safety"]
                out_digest = done.outputs["safety"].digest
            else:
                tuned_model, ft_record = stages.safety_finetune(prep, run_dir, base_digest, progress,
                                                                resume=done.resuming)
                out_art = artifact_record("adapter" if plan.finetune.method == "lora" else "tuned_model",
                                          ft_record.output_path)
                ft_record = ft_record.model_copy(update={"output_digest": out_art.digest})
                store.append(run_id, [ft_record, out_art])
                models.trained("safety", tuned_model, ft_record)
                out_digest = out_art.digest

            stage = "evaluate tuned"
            tuned_weights = stages.saved_weights(prep, ft_record)
            tuned = stages.evaluate_or_reuse(store, run_id, prep, judge, "tuned", models.load_tuned, done, progress,
                                             earlier=base, weights=tuned_weights)

        stress_metrics: list[MetricRecord] = []
        if plan.stress.enabled:  # never in an evaluate-only run: the plan turns it off (it needs training)
            stage = "persistence stress fine-tune"
            st_record: FinetuneRecord | None
            if "stress" not in done.finetune and "stress" not in done.metrics:
                stressed, st_record = stages.stress_finetune(prep, models.load_tuned(), run_dir, out_digest,
                                                             progress, resume=done.resuming)
                st_art = artifact_record("stress_adapter" if plan.stress.method == "lora" else "stress_model",
                                         st_record.output_path)
                st_record = st_record.model_copy(update={"output_digest": st_art.digest})
                store.append(run_id, [st_record, st_art])
                models.trained("stress", stressed, st_record)
            else:
                st_record = done.finetune.get("stress")
            stage = "evaluate stressed"
            stress_weights = (stages.saved_weights(prep, st_record) if st_record and st_record.method == "full"
                              else None)
            stress_metrics = stages.evaluate_or_reuse(store, run_id, prep, judge, "stress", models.load_stressed,
                                                      done, progress, earlier=tuned, weights=stress_weights).metrics

        stage = "verdict"
        metrics = (base.metrics if base else []) + tuned.metrics + stress_metrics
        verdict = done.verdict
        if verdict is None:
            verdict = decide(plan.policy, metrics, comparisons=store.records(run_id, kinds=["comparison"]))
            store.append(run_id, [verdict])
        stage = "seal"
        seal_run(store, run_id, complete=True, key_path=sign_key, scope="evidence")
        result.status, result.reasons = verdict.status, verdict.reasons
        result.metrics = metrics
        result.exit_code = EXIT_PASS if verdict.status == "PASS" else EXIT_FAIL
    except Exception as err:  # any stage failing leaves a sealed, incomplete, ERROR run
        message = f"{type(err).__name__}: {err}"
        store.append(run_id, [RunFailed(stage=stage, error=message, failed_at=utc_now()),
                              decide(plan.policy, [], complete=False, error=f"{stage} failed: {message}")])
        seal_run(store, run_id, complete=False, key_path=sign_key, scope="evidence")
        result.error = f"{stage} failed: {message}"

    if prep.ranks.main:  # the other ranks' ledgers are their own, in memory: nothing to render
        result.packs = render_packs(store, run_id, plan.report.regimes, run_dir / "packs", progress=progress,
                                    key_path=sign_key)
    return result


def render_packs(store: Store, run_id: str, regimes, out_dir: Path, *, redact: bool | None = None,
                 progress: Progress | None = None, key_path: Path | None = None) -> dict[str, Path]:
    """Render packs from the ledger alone, appending a PackRecord for each, then a packs seal (signed with
    ``key_path``) listing every pack of the run; a re-render writes a new version's file beside the earlier
    ones (see ``pack_file_name``), never over one the ledger records.

    The run must be sealed, and a run whose seals are signed is sealed again only with the same key:
    SigningKeyError (before anything is written) otherwise.

    The run's records (and a comparison run's) are read once for all the packs; each
    PackRecord is also added to the in-memory list, so a later pack sees the ledger as it
    now stands, exactly as if it had been read again.
    """
    progress = progress or SilentProgress()
    records: list[Record] = store.records(run_id)
    seals = [r for r in records if isinstance(r, ManifestRecord)]
    if not seals:
        raise ValueError(f"run {run_id}: never sealed, so it has no evidence to render packs from")
    if problem := key_for_run(seals, key_path):
        raise SigningKeyError(problem)
    view = build_view(records)
    final = bool(view.final)
    report = dict(records[0].plan.get("report", {})) if isinstance(records[0], RunStarted) else {}
    if redact is not None:
        report["redact_outputs"] = redact
    comparison = comparison_records(store, report.get("compare_with"))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for regime in regimes:
        with progress.stage(f"Rendering the {regime.upper()} pack"):
            out = out_dir / pack_file_name(regime, run_id, records)
            attached = pack_attachments(store, run_id, regime, redact_outputs=report.get("redact_outputs", True),
                                        report=report, comparison=comparison, key_path=key_path)
            pages = render_pack(records, regime, out, redact_outputs=report.get("redact_outputs", True),
                                report=report, comparison=comparison, attachments=attached)
            pack = PackRecord(regime=regime, path=str(out.resolve()), digest=tree_digest(out).digest, pages=pages,
                              final=final, rendered_at=utc_now())
            store.append(run_id, [pack])
            records.append(pack)
            written[regime] = out
    with progress.stage("Sealing the packs"):
        seal_run(store, run_id, complete=seals[-1].complete, key_path=key_path, scope="packs")
    return written


def pack_file_name(regime: str, run_id: str, records: list[Record]) -> str:
    """The file for the next version of the ``regime`` pack: ``<regime>-assurance-pack-<id>.pdf`` for the
    first, ``-v<N>.pdf`` after, N being the version its document control prints (``report/document.py``).

    Overwriting an earlier version would break its PackRecord's digest, so ``assure verify`` would fail an
    untampered run; a name that some PackRecord already holds is skipped (packs named by older code)."""
    packs = [r for r in records if isinstance(r, PackRecord)]
    taken = {Path(p.path).name for p in packs}
    version = pack_version(packs, regime)
    name = f"{regime}-assurance-pack-{run_id[:8]}" + (f"-v{version}" if version > 1 else "")
    while f"{name}.pdf" in taken:  # only under a ledger whose packs were named otherwise
        version += 1
        name = f"{regime}-assurance-pack-{run_id[:8]}-v{version}"
    return f"{name}.pdf"
