"""A run's evidence, gathered into one read-only view for the packs.

The report layer reads evidence records and nothing else (never a model), so a
pack can be re-rendered years later from the ledger alone. ``build_view`` walks
a run's records in ledger order and collects what the templates need; it
computes nothing a reader could not recompute from the records themselves
(rates and intervals come from MetricRecords as recorded, never re-derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from assurance.battery.categories import category_name
from assurance.battery.metrics import is_main
from assurance.battery.stats import detectable_difference
from assurance.evidence.records import (
    AgreementRecord,
    ArtifactRecord,
    BatteryRecord,
    Check,
    ComparisonRecord,
    EnvironmentRecord,
    FinetuneRecord,
    JudgeValidationRecord,
    ManifestRecord,
    MetricRecord,
    PackRecord,
    ProfileRecord,
    Record,
    RunFailed,
    RunStarted,
    SampleRecord,
    SignoffRecord,
    SuppliedModelRecord,
    VerdictRecord,
)
from assurance.plan import PolicySpec, ReportSpec
from assurance.profile import OrgProfile
from assurance.report.signoffs import SignoffRow, signoff_rows
from assurance.stage_labels import stage_label

STAGES = ("base", "tuned", "stress")


@dataclass(frozen=True)
class CategoryRow:
    """One line of a results table: a metric for one category across stages."""

    metric: str
    """``refusal_rate`` (higher is safer) or ``over_refusal_rate`` (lower is better)."""
    category: str
    """Category name, or ``overall``."""
    base: MetricRecord | None
    tuned: MetricRecord | None
    stress: MetricRecord | None
    threshold: float | None
    """Policy limit: a minimum for refusal_rate, a maximum for over_refusal_rate (as the verdict applied it)."""
    meets: bool | None
    """Whether the verdict's checks on this row all passed; None when the verdict has no check on it."""

    @property
    def label(self) -> str:
        """The category's human-readable name (``battery/categories.py``), for the packs."""
        return category_name(self.category)

    @property
    def n(self) -> int | None:
        """Items counted for the tuned model (else the base model)."""
        rec = self.tuned or self.base
        return rec.n if rec else None

    @property
    def detectable(self) -> float | None:
        """The smallest distance from the threshold that this row's n can show with 80% power
        (``stats.detectable_difference``); None without a threshold or when no distance can be shown."""
        if self.n is None or self.threshold is None:
            return None
        return detectable_difference(self.n, self.threshold)

    @property
    def delta(self) -> float | None:
        """Tuned minus base, when both were measured."""
        if self.base is None or self.tuned is None:
            return None
        return self.tuned.value - self.base.value


@dataclass
class RunView:
    """Everything a pack shows about one run, taken from its records."""

    run_id: str = ""
    name: str = ""
    started_at: str = ""
    tool_version: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    plan_digest: str = ""
    policy: PolicySpec = field(default_factory=PolicySpec)
    environment: EnvironmentRecord | None = None
    resumed_environments: list[EnvironmentRecord] = field(default_factory=list)
    """Environments of processes that resumed the run after it was killed (``assure run --resume``)."""
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    battery: BatteryRecord | None = None
    metrics: dict[str, dict[str, dict[str, MetricRecord]]] = field(default_factory=dict)
    """The main results: metric name -> stage -> category -> record (the latest one recorded wins),
    for the greedy refusal suite only (``is_main``): attack variants, other suites and sampled
    passes carry the same names and must never mix into these tables."""
    metric_log: list[MetricRecord] = field(default_factory=list)
    """Every metric record of the run in ledger order (attacks, signposting, capability, sampled)."""
    refusal: list[CategoryRow] = field(default_factory=list)
    """Harmful categories, ``overall`` last."""
    over_refusal: list[CategoryRow] = field(default_factory=list)
    """Benign categories, ``overall`` last."""
    finetune: FinetuneRecord | None = None
    """The safety fine-tune."""
    stress_finetune: FinetuneRecord | None = None
    """The benign persistence-stress fine-tune, when the run made one."""
    supplied: list[SuppliedModelRecord] = field(default_factory=list)
    """Evaluate-only runs: the models supplied (target first, then any baseline); empty when the run fine-tuned."""
    verdict: VerdictRecord | None = None
    manifest: ManifestRecord | None = None
    failure: RunFailed | None = None
    signoffs: list[SignoffRecord] = field(default_factory=list)
    packs: list[PackRecord] = field(default_factory=list)
    samples: list[SampleRecord] = field(default_factory=list)
    agreements: list[AgreementRecord] = field(default_factory=list)
    """Agreement of every pair of refusal judges, per stage."""
    comparisons: list[ComparisonRecord] = field(default_factory=list)
    """Paired stage comparisons (base -> tuned, tuned -> stress)."""
    judge_validations: list[JudgeValidationRecord] = field(default_factory=list)
    """The judges' measured agreement with human labels (``battery.judge_validation``), if the run measured it."""
    n_records: int = 0
    profile_record: ProfileRecord | None = None
    """The latest organisation profile recorded for the run (at its start, or by ``assure render --profile``)."""
    profile: OrgProfile | None = None
    """``profile_record``'s content, validated; None without a profile (every field a regime needs is then
    a gap) or when the recorded content no longer validates against today's model."""

    @property
    def organisation(self) -> str:
        """The organisation named on the packs: the profile's legal entity, else the plan's ``report.organisation``."""
        given = self.profile.organisation.legal_name if self.profile else None
        return given or self._report_setting("organisation")

    @property
    def system_name(self) -> str:
        """The AI system named on the packs: the profile's system name, else the plan's ``report.system_name``."""
        given = self.profile.system.name if self.profile else None
        return given or self._report_setting("system_name")

    def _report_setting(self, name: str) -> str:
        report = self.plan.get("report")
        value = report.get(name) if isinstance(report, dict) else None
        return str(value) if value else str(ReportSpec.model_fields[name].default)

    def stage_label(self, stage: str, *, lower: bool = False) -> str:
        """A recorded stage name as a reader sees it: ``Tuned``, or ``Target`` when the run evaluated a
        supplied model (``assurance.stage_labels``)."""
        return stage_label(stage, self.evaluate_only, lower=lower)

    @property
    def evaluate_only(self) -> bool:
        """The run evaluated a supplied model (``supplied_model`` records): its stages are the baseline and
        the target, not the base and tuned models."""
        return bool(self.supplied)

    @property
    def final(self) -> bool:
        """A sealed, complete run with a verdict and no failure; anything else is a DRAFT."""
        return (
            self.manifest is not None
            and self.manifest.complete
            and self.verdict is not None
            and self.failure is None
        )

    @property
    def draft_reasons(self) -> list[str]:
        """Why the run is a draft, in plain words (empty when final)."""
        out = []
        if self.failure is not None:
            out.append(f"stage '{self.failure.stage}' failed: {self.failure.error}")
        if self.manifest is None:
            out.append("the run was never sealed (no manifest record)")
        elif not self.manifest.complete:
            out.append("the manifest marks the run incomplete")
        if self.verdict is None:
            out.append("no release-gate verdict was recorded")
        return out

    def artifact(self, role: str) -> ArtifactRecord | None:
        """The last artifact recorded under ``role``."""
        found = [a for a in self.artifacts if a.role == role]
        return found[-1] if found else None

    @property
    def base_model_digest(self) -> str:
        """Digest of the base model, from its artifact or else the fine-tune record."""
        art = self.artifact("base_model")
        if art is not None:
            return art.digest
        return self.finetune.base_model_digest if self.finetune else ""

    @property
    def base_model_path(self) -> str:
        """Where the base model was read from."""
        art = self.artifact("base_model")
        if art is not None:
            return art.path
        endpoint = next((s for s in self.supplied if s.role == "target" and not s.weights_hashed), None)
        if endpoint is not None:  # evaluate-only over HTTP: there is no folder, and `model` was not what ran
            return f"{endpoint.endpoint_url} (endpoint: weights not hashed)"
        return str(self.plan.get("model", {}).get("path", ""))

    def signoff_rows(self, regime: str) -> list[SignoffRow]:
        """The sign-off block of the ``regime`` pack: decisions on that pack or on the run, with their signatures."""
        return signoff_rows([s for s in self.signoffs if s.regime in (None, regime)], self.packs, self.run_id)

    def failures(self, stage: str = "tuned") -> list[SampleRecord]:
        """Greedy refusal-suite samples where the model did the unsafe or unhelpful thing, harmful ones first.

        Attack, signposting, capability and sampled samples are judged on other terms
        (attack success, signposts, exact answers) and are summarised by their own metrics.
        """
        bad = [s for s in self.samples
               if s.stage == stage and s.suite == "refusal" and s.variant is None and s.seed is None
               and s.expected in ("refuse", "comply") and s.refused != (s.expected == "refuse")]
        return sorted(bad, key=lambda s: s.expected != "refuse")

    def stage_present(self, stage: str) -> bool:
        """Whether any metric was recorded for ``stage``."""
        return any(m.stage == stage for m in self.metric_log)


def _policy(plan: dict[str, Any]) -> PolicySpec:
    # An old or hand-edited plan may not validate against today's PolicySpec;
    # the pack must still render, so fall back to the defaults (the verdict's
    # own checks, which carry the thresholds actually applied, take precedence).
    try:
        return PolicySpec.model_validate(plan.get("policy") or {})
    except ValidationError:
        return PolicySpec()


def _profile(rec: ProfileRecord) -> OrgProfile | None:
    # Validated when recorded; should the model ever stop accepting old content, the pack must still render.
    try:
        return OrgProfile.model_validate(rec.content)
    except ValidationError:
        return None


def row_checks(verdict: VerdictRecord | None, metric: str, category: str) -> list[Check]:
    """The verdict's checks on one cell of the main tables: the greedy refusal suite's ``metric``
    for ``category``, before the stress stage (persistence checks belong to their own section)."""
    if verdict is None:
        return []
    return [c for c in verdict.checks if c.metric == metric and c.subject == category and c.suite == "refusal"
            and c.variant is None and "stress" not in c.stages]


def _rows(view: RunView, metric: str) -> list[CategoryRow]:
    by_stage = view.metrics.get(metric, {})
    # Battery display order first, then anything else in the order it was recorded.
    preferred = list(view.battery.categories) if view.battery else []
    seen = {c for stage in by_stage.values() for c in stage}
    order = [c for c in preferred if c in seen and c != "overall"]
    for stage in STAGES:
        for cat in by_stage.get(stage, {}):
            if cat not in order and cat != "overall":
                order.append(cat)
    if "overall" in seen:
        order.append("overall")

    rows = []
    for cat in order:
        checks = row_checks(view.verdict, metric, cat)
        # The limit shown is the one the verdict applied (none where it checked nothing);
        # without a verdict (a draft), the plan's.
        applied = [c.threshold for c in checks if c.stages == ["tuned"]]
        if applied or view.verdict is not None:
            threshold: float | None = applied[0] if applied else None
        elif metric == "refusal_rate":
            threshold = view.policy.min_refusal_by_category.get(cat, view.policy.min_refusal_rate)
        else:
            threshold = view.policy.max_over_refusal_rate
        # Whether a row meets the policy is the verdict's word, never recomputed here.
        meets = all(c.passed for c in checks) if checks else None
        rows.append(CategoryRow(metric, cat, by_stage.get("base", {}).get(cat), by_stage.get("tuned", {}).get(cat),
                                by_stage.get("stress", {}).get(cat), threshold, meets))
    return rows


def build_view(records: list[Record]) -> RunView:
    """Gather a run's records (in ledger order) into a RunView."""
    view = RunView(n_records=len(records))
    for rec in records:
        if isinstance(rec, RunStarted):
            view.run_id = rec.run_id
            view.plan = dict(rec.plan)
            view.name = str(rec.plan.get("name", ""))
            view.plan_digest = rec.plan_digest
            view.started_at = rec.started_at
            view.tool_version = rec.tool_version
            view.policy = _policy(rec.plan)
        elif isinstance(rec, EnvironmentRecord):
            if view.environment is None:
                view.environment = rec
            else:
                view.resumed_environments.append(rec)
        elif isinstance(rec, ArtifactRecord):
            view.artifacts.append(rec)
        elif isinstance(rec, BatteryRecord):
            view.battery = rec
        elif isinstance(rec, MetricRecord):
            view.metric_log.append(rec)
            if is_main(rec):
                view.metrics.setdefault(rec.name, {}).setdefault(rec.stage, {})[rec.category] = rec
        elif isinstance(rec, FinetuneRecord):
            if rec.purpose == "safety":
                view.finetune = rec
            else:
                view.stress_finetune = rec
        elif isinstance(rec, VerdictRecord):
            view.verdict = rec
        elif isinstance(rec, RunFailed):
            # Keep the first failure: later ones are usually consequences of it.
            view.failure = view.failure or rec
        elif isinstance(rec, ManifestRecord):
            view.manifest = rec
        elif isinstance(rec, SignoffRecord):
            view.signoffs.append(rec)
        elif isinstance(rec, PackRecord):
            view.packs.append(rec)
        elif isinstance(rec, SampleRecord):
            view.samples.append(rec)
        elif isinstance(rec, AgreementRecord):
            view.agreements.append(rec)
        elif isinstance(rec, ComparisonRecord):
            view.comparisons.append(rec)
        elif isinstance(rec, JudgeValidationRecord):
            view.judge_validations.append(rec)
        elif isinstance(rec, ProfileRecord):
            view.profile_record = rec
        elif isinstance(rec, SuppliedModelRecord):
            view.supplied.append(rec)
    if view.profile_record is not None:
        view.profile = _profile(view.profile_record)
    view.refusal = _rows(view, "refusal_rate")
    view.over_refusal = _rows(view, "over_refusal_rate")
    return view
