"""Typed evidence records.

Every fact a run establishes is one of these records. They are serialised
canonically (RFC 8785, see ``hashing.canonical_json``), addressed by their
SHA-256, and chained per run in the ledger (``store.py``). The report layer
reads nothing else, so a pack can be re-rendered from the ledger alone.

Changing a field here changes the JSON Schema in ``evidence/schema/``; a test
fails until ``assure schema`` is re-run, and any change that alters how an
existing record serialises needs a new ``schema_version`` and a migration,
never a silent edit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

Stage = Literal["base", "tuned", "stress"]
"""Which model an evaluation looked at: the base model, the safety-tuned model,
or the tuned model after the benign persistence-stress fine-tune."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    schema_version: int = SCHEMA_VERSION
    """Version of the record encoding; bumped only together with a migration."""


class RunStarted(_Record):
    """The first record of every run: what was asked for, by which tool."""

    kind: Literal["run_started"] = "run_started"
    run_id: str
    """Time-ordered run identifier (UUIDv7)."""
    plan: dict[str, Any]
    """The full validated plan, defaults filled in."""
    plan_digest: str
    """SHA-256 of the plan's canonical JSON."""
    plan_path: str | None = None
    """Where the plan was read from, if from a file."""
    tool_version: str
    """Version of the assurance package that made the run."""
    started_at: str
    """UTC time the run started, ISO 8601."""


class EnvironmentRecord(_Record):
    """The software and hardware the run executed on."""

    kind: Literal["environment"] = "environment"
    python: str
    """Python version."""
    platform: str
    """Operating system and architecture."""
    packages: dict[str, str]
    """Versions of the packages that shape results (torch, transformers, peft, ...)."""
    device: str
    """Device the run used: ``cpu`` or ``cuda:N``."""
    accelerator: str
    """GPU name and CUDA version, or the CPU description."""
    dtype: str
    """Numeric type used for model weights during evaluation and training."""
    tool_version: str
    """Version of the assurance package."""
    git_commit: str | None = None
    """Commit of the assurance source tree, when it is a git checkout."""
    git_dirty: bool | None = None
    """True when the source tree had uncommitted changes."""


class ArtifactRecord(_Record):
    """A file or folder the run read or wrote, with its digest."""

    kind: Literal["artifact"] = "artifact"
    role: str
    """What the artifact is to the run: ``base_model``, ``adapter``, ``tuned_model``,
    ``dataset:safety``, ``plan``, ``battery``, ``pack:fca`` and so on."""
    path: str
    """Absolute path at the time of the run; ``builtin:<name>`` for packaged data."""
    digest: str
    """``sha256:<hex>``; for a folder, the directory digest (see evidence/README.md)."""
    is_dir: bool
    """True when ``path`` is a folder."""
    size_bytes: int
    """Total size in bytes."""
    files: dict[str, str] = Field(default_factory=dict)
    """For a folder: relative path -> per-file SHA-256 hex, so a finding can name the file."""


class BatteryRecord(_Record):
    """The evaluation battery and the judge that scored it."""

    kind: Literal["battery"] = "battery"
    battery_id: str
    """Identifier of the battery, e.g. ``assurance-core``."""
    version: str
    """Battery version; recorded with every score."""
    digest: str
    """SHA-256 over the canonical JSON of all items, in order."""
    n_items: int
    """Number of items actually evaluated."""
    categories: list[str]
    """Categories present, in display order."""
    item_digests: dict[str, str] = Field(default_factory=dict)
    """Item id -> SHA-256 of the item's canonical JSON."""
    judge_id: str
    """Identity of the judge, e.g. ``keyword-refusal``."""
    judge_version: str
    """Version of the judge."""
    judge_digest: str
    """SHA-256 of the judge's configuration (for the keyword judge: its phrase list)."""
    generation: dict[str, Any]
    """Decoding settings: greedy or sampled, max_new_tokens, batch size, backend, dtype, seeds."""
    suites: list[str] = Field(default_factory=list)
    """Suites evaluated, in order (``refusal``, ``signposting``, ``prefill``, ``jailbreak``,
    ``capability``); empty on records written before suites existed (refusal only)."""
    suite_digests: dict[str, str] = Field(default_factory=dict)
    """Suite name -> SHA-256 over its name, version, scorer, solver settings (openers,
    templates, k values) and items."""
    judges: list[dict[str, Any]] = Field(default_factory=list)
    """Every other judge or scorer used (signposting, exact match, choice log-likelihood, secondary
    refusal judges, the over-refusal judge behind a harm-measuring primary):
    ``{"id", "version", "digest", "suite"}``, plus ``role``, ``measures`` and ``config`` for refusal judges."""
    extra_suites: list[dict[str, Any]] = Field(default_factory=list)
    """Public benchmarks run beside the battery (not part of its digest, never gated):
    ``{"suite", "benchmark", "path", "file_digest", "suite_digest", "n_items", "options", "citation"}``."""


class SampleRecord(_Record):
    """One battery item answered by one model and judged."""

    kind: Literal["sample"] = "sample"
    stage: Stage
    """Which model produced the output."""
    item_id: str
    """Battery item identifier."""
    category: str
    """Category of the item."""
    expected: Literal["refuse", "comply", "signpost", "answer"]
    """What a safe model should do with this item (``signpost``: point to UK help;
    ``answer``: give the item's exact answer)."""
    prompt: str
    """The user prompt as sent (before the chat template; jailbreak-wrapped where so)."""
    output: str
    """The model's full output text; packs redact it by default."""
    refused: bool
    """The judge's verdict: True when the output is a refusal."""
    judge_id: str
    """Which judge gave the verdict."""
    suite: str = "refusal"
    """Battery suite the sample belongs to."""
    variant: str | None = None
    """Probe variant: ``prefill-k10``, ``jailbreak:roleplay``...; None for the plain item."""
    k: int | None = None
    """Prefilling attack: opener tokens prefilled in the assistant turn."""
    prefill: str | None = None
    """Prefilling attack: the prefilled text; ``output`` is only its continuation."""
    seed: int | None = None
    """Sampling seed; None for greedy decoding."""
    attack_succeeded: bool | None = None
    """Attack suites: True when the harmful request was not refused."""
    signposted: bool | None = None
    """Signposting suite: True when the output points to a UK help service."""
    signposts: list[str] = Field(default_factory=list)
    """Signposting suite: labels of the services the output names (``samaritans``, ``nhs``...)."""
    correct: bool | None = None
    """Capability suite: True when the answer was right."""
    answer: str | None = None
    """Capability suite: the expected answer."""


class MetricRecord(_Record):
    """A rate with its Wilson 95% interval."""

    kind: Literal["metric"] = "metric"
    stage: Stage
    """Which model the metric describes."""
    name: Literal["refusal_rate", "over_refusal_rate", "attack_success_rate", "signposting_rate", "capability_score"]
    """``refusal_rate``: share of harmful items refused (higher is safer);
    ``over_refusal_rate``: share of benign items refused (lower is better);
    ``attack_success_rate``: share of attacked harmful requests not refused (lower is safer);
    ``signposting_rate``: share of regulated-advice prompts answered with a signpost (higher is better);
    ``capability_score``: share of capability items answered correctly (higher is better)."""
    category: str
    """Item category, or ``overall``."""
    successes: int
    """Count of items that met the metric's event (refusals)."""
    n: int
    """Items counted."""
    value: float
    """successes / n."""
    ci_low: float
    """Lower bound of the Wilson 95% interval."""
    ci_high: float
    """Upper bound of the Wilson 95% interval."""
    suite: str = "refusal"
    """Battery suite the metric summarises."""
    variant: str | None = None
    """Probe variant (``prefill-k10``, ``jailbreak:roleplay``); None for plain items or all variants."""
    k: int | None = None
    """Prefilling attack: opener tokens prefilled (one metric per k gives the curve)."""
    decoding: Literal["greedy", "sampled"] = "greedy"
    """``greedy``: the deterministic pass the gate reads; ``sampled``: temperature/top-p decoding."""
    seed: int | None = None
    """Sampled decoding: the seed of this pass; None on greedy metrics and on the across-seed summary."""
    seeds: list[int] = Field(default_factory=list)
    """Across-seed summary: the seeds summarised. Then ``value`` is the mean over seeds,
    ``successes``/``n`` are pooled and the interval is Wilson's on the pooled counts."""
    seed_sd: float | None = None
    """Across-seed summary: sample standard deviation of the per-seed values (0 for one seed)."""
    seed_min: float | None = None
    """Across-seed summary: lowest per-seed value."""
    seed_max: float | None = None
    """Across-seed summary: highest per-seed value."""


class FinetuneRecord(_Record):
    """A fine-tuning stage: its recipe, every setting and what it cost."""

    kind: Literal["finetune"] = "finetune"
    purpose: Literal["safety", "stress"]
    """``safety``: the safety fine-tune; ``stress``: the benign persistence-stress fine-tune."""
    recipe: str
    """Named recipe, e.g. ``sft``."""
    method: Literal["full", "lora"]
    """Full fine-tuning or a LoRA adapter."""
    hyperparameters: dict[str, Any]
    """Every setting that shaped training (lr, steps, batch size, LoRA rank, ...)."""
    seed: int
    """Seed for data order and initialisation."""
    n_safety_examples: int
    """Safety examples in the training mix."""
    n_utility_examples: int
    """Utility examples in the training mix."""
    achieved_safety_ratio: float
    """Share of safety examples in the mix, by examples."""
    achieved_safety_token_ratio: float
    """Share of supervised tokens that came from safety examples."""
    steps: int
    """Optimizer steps taken."""
    loss_curve: list[tuple[int, float]]
    """(step, loss) pairs, thinned to at most 200 points."""
    tokens_seen: int
    """Supervised (assistant) tokens seen during training."""
    tokens_per_second: float
    """All tokens processed per second of training wall time."""
    wall_seconds: float
    """Training wall time."""
    peak_memory_bytes: int
    """Peak memory: CUDA max allocated on GPU, process peak RSS on CPU."""
    base_model_digest: str
    """Digest of the model that training started from."""
    output_digest: str
    """Digest of the saved adapter or model folder."""
    output_path: str
    """Where the adapter or model was saved."""
    objective: str = "sft"
    """Training objective: ``sft`` (cross-entropy) or ``constrained`` (token-wise constrained)."""
    augmentation: str = "none"
    """Data augmentation: ``none`` or ``deep-alignment`` (safety-recovery examples)."""
    recipe_settings: dict[str, Any] = Field(default_factory=dict)
    """Settings of the augmentation and objective (betas, prefill probability, prefix cap), and counts
    such as how many recovery examples were prefilled."""
    literature: list[str] = Field(default_factory=list)
    """Citations for the recipe's method, shown in the packs."""
    tokens_total: int = 0
    """All tokens processed (prompt and answer, without padding)."""
    resumed_from_step: int | None = None
    """Step of the checkpoint training resumed from, or null for an uninterrupted run."""


class JudgeVerdictsRecord(_Record):
    """A secondary judge's verdicts on one stage's refusal-suite outputs (greedy pass).

    The primary judge's verdicts live in the SampleRecords (``refused``); a
    secondary judge only cross-checks them, so its verdicts are kept compactly
    here, in parallel lists by item, and never feed a metric or the gate.
    """

    kind: Literal["judge_verdicts"] = "judge_verdicts"
    stage: Stage
    """Which model's outputs were judged."""
    suite: str = "refusal"
    """Battery suite whose outputs were judged."""
    judge_id: str
    """The judge, ``<id>@<version>``."""
    judge_digest: str
    """SHA-256 of the judge's configuration (no secrets)."""
    measures: Literal["refusal", "harm"]
    """What the verdicts detect; a harm judge scores harmful items only."""
    item_ids: list[str]
    """Items judged, in order."""
    refused: list[bool]
    """Per item: True when the model did not give the help asked for (refusal, or judged safe)."""
    labels: list[str]
    """Per item: the judge's own label (``refusal``, ``complied``, ``safe``, ``unsafe``, ``unparsed``...)."""
    raw: list[str] = Field(default_factory=list)
    """Per item: the judge's raw reply (empty for keyword judges)."""
    served: dict[str, int] = Field(default_factory=dict)
    """HTTP judges: ``<model> <system_fingerprint>`` as reported by the server -> replies, i.e. what answered."""

    @model_validator(mode="after")
    def _parallel(self) -> "JudgeVerdictsRecord":
        n = len(self.item_ids)
        if len(self.refused) != n or len(self.labels) != n or (self.raw and len(self.raw) != n):
            raise ValueError("item_ids, refused, labels (and raw, when given) must have one entry per item")
        return self


class AgreementRecord(_Record):
    """How far two judges agreed on the same outputs: raw agreement, Cohen's kappa, the split items."""

    kind: Literal["agreement"] = "agreement"
    stage: Stage
    """Which model's outputs both judges scored."""
    suite: str = "refusal"
    """Battery suite whose outputs were compared."""
    judge_a: str
    """First judge, ``<id>@<version>`` (the primary judge when it is part of the pair)."""
    judge_a_digest: str
    """Configuration digest of the first judge."""
    judge_b: str
    """Second judge, ``<id>@<version>``."""
    judge_b_digest: str
    """Configuration digest of the second judge."""
    scope: Literal["all", "harmful"]
    """Items compared: ``all`` (harmful and benign) or ``harmful`` only, when either judge measures harm
    (on benign prompts a harm judge's "safe" and a refusal judge's "complied" are not in conflict)."""
    n: int
    """Items both judges scored."""
    agreement: float
    """Share of items with the same verdict."""
    kappa: float
    """Cohen's kappa (1.0 when both judges give one and the same verdict to every item)."""
    a_refused: int
    """Items the first judge classed as refused/safe."""
    b_refused: int
    """Items the second judge classed as refused/safe."""
    disagreements: list[str] = Field(default_factory=list)
    """Item ids the two judges split on, in item order."""


class ComparisonRecord(_Record):
    """A paired per-item comparison of two stages: the difference with a bootstrap interval, and McNemar's test.

    Both stages answered the same items (paired by item id, and by variant for
    attacks), so the difference is estimated from per-item pairs; greedy pass,
    primary judge.
    """

    kind: Literal["comparison"] = "comparison"
    stage_from: Stage
    """The earlier model: ``base`` (against tuned) or ``tuned`` (against stress)."""
    stage_to: Stage
    """The later model."""
    suite: str
    """``refusal`` (harmful items) or ``prefill`` (the prefilling attack)."""
    metric: Literal["refusal_rate", "attack_success_rate"]
    """What the per-item outcome is: refused (refusal suite) or attack succeeded (prefill)."""
    category: str
    """Item category, or ``overall``."""
    variant: str | None = None
    """Prefill: one k (``prefill-k10``); None for all variants together."""
    k: int | None = None
    """Prefill: opener tokens, when ``variant`` names one k."""
    n: int
    """Paired items (item, variant) answered at both stages."""
    value_from: float
    """Rate at ``stage_from`` over the paired items."""
    value_to: float
    """Rate at ``stage_to`` over the paired items."""
    delta: float
    """value_to - value_from."""
    ci_low: float
    """Lower bound of the paired percentile bootstrap interval of ``delta``."""
    ci_high: float
    """Upper bound of that interval."""
    confidence: float = 0.95
    """Confidence level of the interval."""
    n_resamples: int
    """Bootstrap resamples (items resampled in pairs; NumPy PCG64, version in the environment record)."""
    seed: int
    """Bootstrap seed."""
    mcnemar_b: int
    """Pairs with the event (refused / attack succeeded) at ``stage_from`` only."""
    mcnemar_c: int
    """Pairs with the event at ``stage_to`` only."""
    mcnemar_statistic: float
    """min(b, c) for the exact test; the continuity-corrected chi-square otherwise."""
    mcnemar_p_value: float
    """Two-sided p-value for a change in the outcome."""
    mcnemar_method: str
    """``exact-binomial`` (b + c < 25) or ``chi-square-continuity-corrected``."""
    judge_id: str = ""
    """The judge(s) whose verdicts were compared, ``<id>@<version>`` (comma-separated if several)."""


class VerdictRecord(_Record):
    """The release-gate decision and every reason for it."""

    kind: Literal["verdict"] = "verdict"
    status: Literal["PASS", "FAIL", "ERROR"]
    """PASS only when every check passed on a complete run."""
    checks: list[dict[str, Any]]
    """Each check: name, category, observed, threshold, passed, reason."""
    reasons: list[str]
    """Human-readable reasons for every failed check (empty on PASS)."""


class RunFailed(_Record):
    """A stage raised an error; the run is incomplete and cannot pass."""

    kind: Literal["run_failed"] = "run_failed"
    stage: str
    """The stage that failed."""
    error: str
    """The error message."""
    failed_at: str
    """UTC time of the failure."""


class ManifestRecord(_Record):
    """The seal: chain head and every artifact digest at the end of the run."""

    kind: Literal["manifest"] = "manifest"
    complete: bool
    """True only when every stage finished; an incomplete run never reads as final."""
    chain_head: str
    """Chain digest of the record just before this one."""
    n_records: int
    """Records sealed (those before this one)."""
    artifacts: dict[str, str]
    """Artifact role -> digest, for every artifact of the run."""
    sealed_at: str
    """UTC time of sealing."""
    signature: str | None = None
    """Optional Ed25519 signature (base64) over the manifest's canonical JSON without this field."""
    public_key: str | None = None
    """Ed25519 public key (base64, raw 32 bytes) that made the signature."""


class PackRecord(_Record):
    """A rendered PDF pack; appended after the seal because it is made from it."""

    kind: Literal["pack"] = "pack"
    regime: Literal["fca", "nhs", "uk-ai"]
    """Which audience the pack is written for."""
    path: str
    """Where the PDF was written."""
    digest: str
    """``sha256:<hex>`` of the PDF file."""
    pages: int
    """Page count."""
    final: bool
    """False when the run was incomplete or failed: the pack is marked DRAFT."""
    rendered_at: str
    """UTC time of rendering."""


class SignoffRecord(_Record):
    """A named person's decision on the run, appended after the seal."""

    kind: Literal["signoff"] = "signoff"
    name: str
    """Who signed."""
    role: str
    """Their role, e.g. SMF24 Chief Operations or Clinical Safety Officer."""
    decision: Literal["approve", "reject", "approve-with-conditions"]
    """The decision."""
    regime: Literal["fca", "nhs", "uk-ai"] | None = None
    """The pack the decision is for, if one."""
    note: str = ""
    """Conditions or comments."""
    signed_at: str
    """UTC time of the sign-off."""


Record = Annotated[
    Union[
        RunStarted,
        EnvironmentRecord,
        ArtifactRecord,
        BatteryRecord,
        SampleRecord,
        MetricRecord,
        JudgeVerdictsRecord,
        AgreementRecord,
        ComparisonRecord,
        FinetuneRecord,
        VerdictRecord,
        RunFailed,
        ManifestRecord,
        PackRecord,
        SignoffRecord,
    ],
    Field(discriminator="kind"),
]
"""Any evidence record, discriminated by its ``kind``."""

RECORD_TYPES: tuple[type[_Record], ...] = (
    RunStarted,
    EnvironmentRecord,
    ArtifactRecord,
    BatteryRecord,
    SampleRecord,
    MetricRecord,
    JudgeVerdictsRecord,
    AgreementRecord,
    ComparisonRecord,
    FinetuneRecord,
    VerdictRecord,
    RunFailed,
    ManifestRecord,
    PackRecord,
    SignoffRecord,
)
