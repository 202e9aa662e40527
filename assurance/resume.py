"""Resuming a run that was killed: ``assure run --resume RUN_ID``.

A run killed before its seal (SIGKILL, power loss, an OOM kill) has no manifest in
the ledger; ``assure verify`` reports it as never sealed. Resuming it continues the
same chain under the same run id, then seals and renders as usual. A run killed
after its evidence seal but before its packs seal only renders the packs the plan
asks for that are not yet in the chain, then seals them (``resume_packs``):

* The plan is the one in the run's RunStarted record, never a file that may have
  changed since. A plan file given beside ``--resume`` must have the recorded
  canonical digest, or the resume is refused.
* A run with a packs seal (or the single seal of older releases), complete or
  incomplete, is final: it cannot be resumed. A run whose evidence seal is signed
  has its packs sealed only with the same ``--sign-key``.
* Every input is loaded and checked again (``inputs.prepare``), and the base
  model, data sets, benchmark files and judge models are re-hashed: any digest that
  differs from the run's ArtifactRecords refuses the resume. So does a saved
  adapter or model whose folder no longer has its recorded digest. A refusal
  appends nothing.
* The checkpoint an interrupted fine-tune would continue from must still have the
  digest its meta.json recorded when it was written (``finetune/checkpoint.py``).
* Each stage appends its records in one transaction, so a stage is either wholly in
  the chain or not at all; the stages already there are skipped (their metrics and
  greedy samples are read back from the ledger for the verdict and the paired
  comparisons), a finished fine-tune's output is reloaded from disk (a LoRA adapter
  onto the base with peft, or the full model folder), and an interrupted fine-tune
  continues from its latest checkpoint in the run folder (``finetune.checkpoint_every``).

How the resumption shows in the evidence (no new record kind):

* a second EnvironmentRecord, appended when the resume starts, describes the
  process that finished the run (its software, hardware and source state), after
  the one from the process that started it; the time gap between the records'
  ``created_at`` is the interruption;
* a fine-tune that resumed from a checkpoint has ``resumed_from_step`` set in its
  FinetuneRecord (its ``wall_seconds`` include the time before the kill).

A run killed before its provenance stage has no EnvironmentRecord yet; the resume
records provenance as a new run would, so there is then only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .evidence.hashing import json_digest, tree_digest
from .evidence.records import (
    ArtifactRecord,
    FinetuneRecord,
    ManifestRecord,
    MetricRecord,
    PackRecord,
    Record,
    RunFailed,
    RunStarted,
    SampleRecord,
    VerdictRecord,
)
from .evidence.seal import key_for_run
from .evidence.store import Store, runs_home
from .inputs import Progress, SilentProgress, environment_record, input_artifacts, prepare
from .pipeline import RunResult, render_packs, run_stages
from .plan import Plan, PlanError, plan_from_dict
from .plan.battery import adopt_recorded_versions, recorded_judge_versions
from .policy import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from .prepared import Prepared
from .runlock import run_lock
from .stages import Done, paired_samples

OUTPUT_ROLES = {"safety": ("adapter", "tuned_model"), "stress": ("stress_adapter", "stress_model")}
"""FinetuneRecord purpose -> the artifact roles its saved output may have."""


class ResumeError(PlanError):
    """A run that cannot be resumed as asked; the message says why. Nothing was appended."""


def ledger_state(records: list[Record]) -> Done:
    """What the run's chain already holds, stage by stage (see ``stages.Done``)."""
    done = Done(resuming=True)
    for r in records:
        if r.kind == "battery":
            done.provenance = True
        elif isinstance(r, ArtifactRecord):
            done.artifacts[r.role] = r
        elif isinstance(r, MetricRecord):
            done.metrics.setdefault(r.stage, []).append(r)
        elif isinstance(r, FinetuneRecord):
            done.finetune[r.purpose] = r
        elif isinstance(r, VerdictRecord):
            done.verdict = r
    for s in paired_samples(r for r in records if isinstance(r, SampleRecord)):  # the filter a fresh run uses
        done.greedy.setdefault(s.stage, []).append(s)
    for purpose in done.finetune:
        for role in OUTPUT_ROLES[purpose]:
            if role in done.artifacts:
                done.outputs[purpose] = done.artifacts[role]
    return done


def recorded_plan(started: RunStarted, plan: Plan | None, plan_path: Path | None) -> Plan:
    """The plan recorded when the run started; a given plan file (read by ``load_plan``, so its
    paths are already absolute, as the recorded plan's are) must be the same plan."""
    recorded = plan_from_dict(recorded_judge_versions(started.plan), source=f"run {started.run_id}: recorded plan")
    if plan is not None:
        plan = plan.model_copy(update={"battery": adopt_recorded_versions(plan.battery, recorded.battery)})
        given = plan.model_dump(mode="json")
        # Older code recorded some sections in an older shape (e.g. flat judge entries): the same plan
        # then reads back identical, though the recorded digest is over the older shape.
        if json_digest(given) not in (started.plan_digest, json_digest(recorded.model_dump(mode="json"))):
            raise ResumeError(
                f"{plan_path or 'the plan'}: differs from the plan recorded when run {started.run_id} started "
                f"(recorded digest {started.plan_digest}, this file {json_digest(given)}); a resumed run always "
                f"uses its recorded plan: resume without the plan file, or start a new run with `assure run PLAN`")
    return recorded


def check_unchanged(prep: Prepared, done: Done, records: Sequence[Record] = ()) -> None:
    """Refuse the resume when an input or a saved output no longer has the digest the run recorded,
    or when this machine would evaluate with another generation backend than the run recorded."""
    changed: list[str] = []
    battery = next((r for r in records if r.kind == "battery"), None)
    recorded_backends = battery.generation.get("backend_by_stage") if battery is not None else None
    if recorded_backends is not None and recorded_backends != prep.backends:
        changed.append(f"generation backend: the run recorded {recorded_backends}, this machine would use "
                       f"{prep.backends} (scores from two backends are not comparable)")
    if done.provenance:
        for art in input_artifacts(prep, None):  # the plan file is not re-read: the recorded plan is used
            old = done.artifacts.get(art.role)
            if old is None:
                changed.append(f"{art.role}: {art.path} is read by the plan but was not recorded by the run")
            elif old.digest != art.digest:
                changed.append(f"{art.role}: {art.path} has digest {art.digest}, the run recorded {old.digest}")
    for purpose, ft in done.finetune.items():
        output = done.outputs.get(purpose)
        path = Path(ft.output_path)
        if output is None:
            changed.append(f"{purpose} fine-tune: its output artifact is not in the ledger")
        elif not path.exists():
            changed.append(f"{output.role}: {path} is no longer on disk")
        elif (now := tree_digest(path).digest) != output.digest:
            changed.append(f"{output.role}: {path} has digest {now}, the run recorded {output.digest}")
    if changed:
        raise ResumeError("cannot resume: the run's evidence no longer matches what is on disk, so its results "
                          "could not be continued honestly (start a new run):\n  - " + "\n  - ".join(changed))


def check_checkpoints(run_dir: Path) -> None:
    """Refuse the resume when the checkpoint an interrupted fine-tune would continue from changed since it
    was written (its meta.json holds the digest); checked here so the refusal appends nothing."""
    from .finetune import checkpoint as ckpt

    for root in sorted(run_dir.glob("*/checkpoints")):
        latest = ckpt.latest(root)
        if latest is None:
            continue
        try:
            ckpt.check(latest)
        except ckpt.CheckpointError as err:
            raise ResumeError(f"cannot resume: {err}") from None


def resume_pipeline(
    run_id: str,
    *,
    plan: Plan | None = None,
    plan_path: Path | None = None,
    store_url: str | None = None,
    progress: Progress | None = None,
    sign_key: Path | None = None,
    run_root: Path | None = None,
) -> RunResult:
    """Continue the killed run ``run_id`` (a unique prefix will do) to its seal and packs.

    Raises ResumeError (a PlanError: exit 2, nothing appended) when the run is unknown,
    already sealed, its plan file differs, or its inputs or outputs changed on disk."""
    progress = progress or SilentProgress()
    store = Store(store_url, create=False)
    rid = store.resolve(run_id)
    records = store.records(rid)
    started = records[0]
    if not isinstance(started, RunStarted):
        raise ResumeError(f"run {rid}: its first record is not run_started; not a run that can be resumed")
    seals = [r for r in records if isinstance(r, ManifestRecord)]
    if seals and seals[-1].scope != "evidence":
        state = "complete" if seals[-1].complete else "incomplete"
        raise ResumeError(f"run {rid} is already sealed ({state}); a sealed run is final and cannot be resumed. "
                          "Start a new run with `assure run PLAN`")
    the_plan = recorded_plan(started, plan, plan_path)
    if seals:
        return resume_packs(store, rid, records, the_plan, progress=progress, sign_key=sign_key, run_root=run_root)
    done = ledger_state(records)

    # The profile is recorded with the provenance: a run that has it reuses it and never reads the file again.
    prep = prepare(the_plan, progress, read_profile=not done.provenance)  # raises on bad input; nothing written yet
    with progress.stage("Resume: re-hashing the run's inputs and saved outputs"):
        check_unchanged(prep, done, records)

    outputs = [Path(ft.output_path) for ft in done.finetune.values()]
    run_dir = run_folder(rid, done, run_root)
    if not outputs and not run_dir.is_dir():
        progress.note(f"No run folder at {run_dir} (another ASSURE_HOME?): an interrupted fine-tune starts again "
                      "from step 0")
    check_checkpoints(run_dir)
    if plan_path is None and started.plan_path and Path(started.plan_path).is_file():
        plan_path = Path(started.plan_path)  # only hashed when provenance was never recorded
    with run_lock(run_dir, rid):  # a run whose process still lives is refused, before anything is appended
        if done.provenance:
            store.append(rid, [environment_record(prep)])  # the resuming process's environment, after the first one
        skipped = [s for s in ("base", "tuned", "stress") if s in done.metrics]
        progress.note(f"Resuming run {rid}: {len(records)} records in the chain"
                      + (f"; evaluated already: {', '.join(skipped)}" if skipped else ""))
        return run_stages(store, rid, prep, run_dir, done, plan_path=plan_path, progress=progress,
                          sign_key=sign_key)


def run_folder(run_id: str, done: Done, run_root: Path | None) -> Path:
    """The run's folder: where its fine-tune saved its output, else ``<run root>/<run id>``."""
    outputs = [Path(ft.output_path) for ft in done.finetune.values()]
    return outputs[0].parent if outputs else (run_root or runs_home()) / run_id


def resume_packs(store: Store, run_id: str, records: list[Record], plan: Plan, *, progress: Progress,
                 sign_key: Path | None, run_root: Path | None) -> RunResult:
    """Finish a run killed between its evidence seal and its packs seal: render the plan's packs that are not
    in the chain after the evidence seal, then seal the packs. Nothing is evaluated again."""
    seals = [r for r in records if isinstance(r, ManifestRecord)]
    if problem := key_for_run(seals, sign_key):
        raise ResumeError(f"cannot resume run {run_id}: {problem}")
    last_seal = max(i for i, r in enumerate(records) if isinstance(r, ManifestRecord))
    rendered = {r.regime for r in records[last_seal:] if isinstance(r, PackRecord)}
    missing = [regime for regime in plan.report.regimes if regime not in rendered]
    run_dir = run_folder(run_id, ledger_state(records), run_root)
    with run_lock(run_dir, run_id):
        progress.note(f"Resuming run {run_id}: sealed, its packs were not; rendering "
                      + (", ".join(r.upper() for r in missing) if missing else "none (all rendered)")
                      + " and sealing them")
        render_packs(store, run_id, missing, run_dir / "packs", progress=progress, key_path=sign_key)
    return ledger_result(store, run_id, run_dir)


def ledger_result(store: Store, run_id: str, run_dir: Path) -> RunResult:
    """The RunResult of a sealed run, read back from its ledger (its latest version of each pack)."""
    records = store.records(run_id, kinds=("verdict", "metric", "run_failed", "pack"))
    verdict = next((r for r in reversed(records) if isinstance(r, VerdictRecord)), None)
    failed = next((r for r in records if isinstance(r, RunFailed)), None)
    status = verdict.status if verdict else "ERROR"
    result = RunResult(run_id, status, {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL}.get(status, EXIT_ERROR), store.url,
                       run_dir, reasons=verdict.reasons if verdict else [])
    result.metrics = [r for r in records if isinstance(r, MetricRecord)]
    result.packs = {r.regime: Path(r.path) for r in records if isinstance(r, PackRecord)}
    if failed is not None:
        result.error = f"{failed.stage} failed: {failed.error}"
    return result
