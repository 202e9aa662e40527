"""Evidence kinds about what the run recorded: identities, pinning, sealing, the verdict, sign-offs.

Each function reads the RunView only and returns a Finding (``finding.py``). States follow the
records: a thing recorded is ``met``, a thing the run should have recorded but did not is
``not met`` where its absence is itself a defect (an unsealed ledger) and ``not measured`` where
the run simply did not do it (no judge validation).
"""

from __future__ import annotations

from assurance.report.filters import display_path, scrub_paths
from assurance.report.view import RunView
from assurance.requirements.finding import Finding, State, short_digest


def model_identity(view: RunView) -> Finding:
    """The base model is identified by its content digest (and the tuned output by its own)."""
    digest = view.base_model_digest
    if not digest:
        if any(not s.weights_hashed for s in view.supplied):
            return Finding("not measured", "The model was reached over an endpoint: no weights could be hashed.",
                           ["supplied_model target"])
        return Finding("not measured", "No base-model digest was recorded.")
    records = ["artifact base_model"] if view.artifact("base_model") else ["finetune safety"]
    tuned = ""
    if view.finetune is not None and view.finetune.output_digest:
        tuned = f"; the tuned model is {short_digest(view.finetune.output_digest)}"
        records.append("finetune safety")
    which = "model supplied" if view.supplied else "base model"  # an evaluate-only run's target has the base_model role
    return Finding("met", f"The {which} is identified by its SHA-256 content digest "
                          f"{short_digest(digest)}{tuned}.", records)


def training_data_recorded(view: RunView) -> Finding:
    """The datasets the model was tuned on are named and hashed."""
    data = [a for a in view.artifacts if a.role.startswith("dataset:")]
    if not data:
        if view.finetune is None:
            return Finding("not measured", "The run made no fine-tune, so no training data was recorded.")
        return Finding("not met", "The run fine-tuned the model but recorded no dataset digests.",
                       ["finetune safety"])
    names = ", ".join(f"{a.role.removeprefix('dataset:')} ({short_digest(a.digest)})" for a in data)
    return Finding("met", f"{len(data)} dataset(s) recorded by digest: {names}.",
                   [f"artifact {a.role}" for a in data])


def finetune_recorded(view: RunView) -> Finding:
    """The safety fine-tune is recorded with its recipe, settings, loss curve and output digest."""
    ft = view.finetune
    if ft is None:
        return Finding("not measured", "No safety fine-tune was recorded (an assessment of a given model).")
    return Finding("met", f"Safety fine-tune recorded: recipe {ft.recipe} ({ft.method}), {ft.steps} optimiser "
                          f"steps, seed {ft.seed}, {len(ft.hyperparameters)} settings and the loss curve; "
                          f"output {short_digest(ft.output_digest) if ft.output_digest else 'not hashed'}.",
                   ["finetune safety"])


def battery_pinned(view: RunView) -> Finding:
    """The evaluation battery and every judge that scored it are pinned by version and digest."""
    bat = view.battery
    if bat is None:
        return Finding("not measured", "No battery record: the run evaluated nothing.")
    judges = [f"{bat.judge_id}@{bat.judge_version}"] + [f"{j.get('id', '?')}@{j.get('version', '?')}"
                                                         for j in bat.judges]
    unpinned = [j for j in bat.judges if not j.get("digest")]
    state: State = "partly" if unpinned or not bat.judge_digest else "met"
    gap = f" {len(unpinned)} judge(s) carry no digest." if unpinned else ""
    return Finding(state, f"Battery {bat.battery_id} v{bat.version} ({bat.n_items} items, "
                          f"{short_digest(bat.digest)}) with judges {', '.join(judges)}, each pinned by "
                          f"version and digest.{gap}", ["battery"])


def judge_validated(view: RunView) -> Finding:
    """The judges' agreement with human labels was measured (``battery.judge_validation``)."""
    vals = view.judge_validations
    if not vals:
        return Finding("not measured", "The judges were not measured against human labels in this run, so "
                                       "their error rate is unknown.")
    parts = []
    for v in vals:
        iv = v.intervals.get("accuracy", {})
        lo, hi = iv.get("low"), iv.get("high")
        ci = f" [{lo * 100:.1f}–{hi * 100:.1f}]" if lo is not None and hi is not None else ""
        parts.append(f"{v.judge_id}@{v.judge_version} ({v.role}) agreed with human labels on "
                     f"{v.accuracy * 100:.1f}%{ci} of {v.n} rows of {display_path(v.labels_file)} "
                     f"(kappa {v.kappa:.2f})")
    primary = any(v.role == "primary" for v in vals)
    note = "" if primary else "; the primary judge was not validated"
    return Finding("met" if primary else "partly", "; ".join(parts) + note + ".",
                   [f"judge_validation {v.judge_id}@{v.judge_version}" for v in vals])


def judge_agreement(view: RunView) -> Finding:
    """Where several judges scored the same outputs, their agreement is recorded."""
    if not view.agreements:
        return Finding("not measured", "Only one judge scored the refusal suite, so no agreement between "
                                       "judges was measured.")
    a = view.agreements[-1]
    return Finding("met", f"{a.judge_a} and {a.judge_b} agreed on {a.agreement * 100:.1f}% of {a.n} "
                          f"{a.stage} outputs (kappa {a.kappa:.2f}).",
                   [f"agreement {x.stage}/{x.judge_a}~{x.judge_b}" for x in view.agreements])


def environment_recorded(view: RunView) -> Finding:
    """The software and hardware environment is recorded (to rerun the evaluation)."""
    env = view.environment
    if env is None:
        return Finding("not measured", "No environment record.")
    torch = env.packages.get("torch", "not recorded")
    commit = f"tool commit {env.git_commit[:12]}" if env.git_commit else "no tool commit recorded"
    dirty = " with uncommitted changes" if env.git_dirty else ""
    resumed = f"; {len(view.resumed_environments)} resumed process(es) recorded" if view.resumed_environments else ""
    state: State = "partly" if env.git_dirty or not env.git_commit else "met"
    return Finding(state, f"Python {env.python}, torch {torch}, {env.device} ({env.accelerator}, {env.dtype}), "
                          f"{commit}{dirty}{resumed}.", ["environment"])


def ledger_sealed(view: RunView) -> Finding:
    """The run finished and its ledger is sealed as complete (hash-chain head in the manifest)."""
    man = view.manifest
    if view.final and man is not None:
        return Finding("met", f"The run completed and was sealed: {man.n_records} records chained to head "
                              f"{short_digest(man.chain_head)} on {man.sealed_at[:10]}.", ["manifest", "verdict"])
    # A failure's message may quote where a file lay on the machine that ran: the pack names files only.
    reasons = "; ".join(scrub_paths(r) for r in view.draft_reasons) or "the run is not final"
    records = ["manifest"] if man is not None else []
    return Finding("not met", f"This is a draft: {reasons}.", records + (["run_failed"] if view.failure else []))


def signed_manifest(view: RunView) -> Finding:
    """The sealed manifest carries an Ed25519 signature."""
    man = view.manifest
    if man is None:
        return Finding("not measured", "The run was never sealed, so there is nothing signed.")
    if man.signature:
        return Finding("met", "The manifest is signed (Ed25519); `assure verify` checks the signature against "
                              "its public key.", ["manifest"])
    return Finding("partly", "The manifest is sealed but not signed: the hash chain shows changes only to "
                             "someone who does not hold the database.", ["manifest"])


def release_gate(view: RunView) -> Finding:
    """The release-gate verdict, as recorded."""
    v = view.verdict
    if v is None:
        return Finding("not measured", "No release-gate verdict was recorded.")
    failed = [c for c in v.checks if not c.passed]
    if v.status == "PASS":
        return Finding("met", f"The release gate passed all {len(v.checks)} checks.", ["verdict"])
    return Finding("not met", f"The release gate returned {v.status}: {len(failed)} of {len(v.checks)} checks "
                              f"did not pass.", ["verdict"])


def _brief(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "… (in full in the sign-off block)"


def signoffs_recorded(view: RunView) -> Finding:
    """People's decisions on the pack are recorded (sign-off follows the pack: ``assure signoff``)."""
    if not view.signoffs:
        return Finding("not measured", "No sign-off is recorded yet; sign-off follows this pack "
                                       "(assure signoff).")
    # Names and roles are typed by people: a checklist cell names them briefly; the sign-off block has them whole.
    who = "; ".join(f"{_brief(s.name)} ({_brief(s.role)}{f', {s.regime} pack' if s.regime else ''}): {s.decision} on "
                    f"{s.signed_at[:10]}" for s in view.signoffs)
    return Finding("met", f"Decisions recorded: {who}.", [f"signoff {_brief(s.name)}" for s in view.signoffs])
