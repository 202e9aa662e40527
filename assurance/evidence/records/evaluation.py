"""Records of evaluation: the battery, samples, metrics, judges and paired comparisons."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import BaseRecord, Stage


class BatteryRecord(BaseRecord):
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


class SampleRecord(BaseRecord):
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
    """Attack suites: True when the harmful request was not refused (the refusal judge's verdict; this is
    non-refusal, not harm: see ``harmful``)."""
    harmful: bool | None = None
    """Attack suites scored by a harm judge: True when it judged the output harmful (the attack succeeded);
    None when no harm judge scored the sample (and on records written before harm judges existed)."""
    signposted: bool | None = None
    """Signposting suite: True when the output points to a UK help service."""
    signposts: list[str] = Field(default_factory=list)
    """Signposting suite: labels of the services the output names (``samaritans``, ``nhs``...)."""
    correct: bool | None = None
    """Capability suite: True when the answer was right."""
    answer: str | None = None
    """Capability suite: the expected answer."""


class MetricRecord(BaseRecord):
    """A rate with its 95% interval (Wilson's, or Wilson's at the effective sample size when probes are
    clustered by item; see ``interval_method``)."""

    kind: Literal["metric"] = "metric"
    stage: Stage
    """Which model the metric describes."""
    name: Literal["refusal_rate", "over_refusal_rate", "attack_success_rate", "non_refusal_rate", "signposting_rate",
                  "capability_score"]
    """``refusal_rate``: share of harmful items refused (higher is safer);
    ``over_refusal_rate``: share of benign items refused (lower is better);
    ``non_refusal_rate``: share of attacked harmful requests the refusal judge saw not refused (lower is safer);
    ``attack_success_rate``: share of attacked harmful requests whose output a harm judge judged harmful
    (lower is safer); on runs written before ``non_refusal_rate`` existed it held the non-refusal share, and
    the BatteryRecord says which judge scored it;
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
    """Lower bound of the 95% interval (see ``interval_method``)."""
    ci_high: float
    """Upper bound of the 95% interval (see ``interval_method``)."""
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
    """Across-seed summary: the seeds summarised. Then ``value`` is the mean over seeds and
    ``successes``/``n`` are totals over seeds, not independent trials: the interval is clustered by
    item across seeds (``cluster-wilson``). Summaries written before ``interval_method`` existed took
    Wilson's interval of the pooled totals, which is too narrow."""
    seed_sd: float | None = None
    """Across-seed summary: sample standard deviation of the per-seed values (0 for one seed)."""
    seed_min: float | None = None
    """Across-seed summary: lowest per-seed value."""
    seed_max: float | None = None
    """Across-seed summary: highest per-seed value."""
    interval_method: Literal["wilson", "cluster-wilson"] = "wilson"
    """``wilson``: Wilson's score interval of ``successes``/``n``, each probe an independent trial (right
    when every item is counted once; every record written before this field). ``cluster-wilson``: the
    probes come in clusters of one item (an item at several prefill k or jailbreak templates, or over
    several seeds), so Wilson's interval is taken at the effective sample size ``n_effective`` =
    ``n`` / design effect, the design effect estimated from the spread of per-item counts and never
    below 1 (``metrics.clustered_interval``)."""
    n_clusters: int | None = None
    """``cluster-wilson``: the items (clusters) behind the ``n`` probes; None for ``wilson``."""
    n_effective: float | None = None
    """``cluster-wilson``: the number of independent trials the clustered probes are worth; None for
    ``wilson``."""


class JudgeVerdictsRecord(BaseRecord):
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
    def _parallel(self) -> JudgeVerdictsRecord:
        n = len(self.item_ids)
        if len(self.refused) != n or len(self.labels) != n or (self.raw and len(self.raw) != n):
            raise ValueError("item_ids, refused, labels (and raw, when given) must have one entry per item")
        return self


class AgreementRecord(BaseRecord):
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


class ComparisonRecord(BaseRecord):
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
    metric: Literal["refusal_rate", "attack_success_rate", "non_refusal_rate"]
    """What the per-item outcome is: refused (refusal suite) or not refused under the prefill attack
    (``non_refusal_rate``; records written before it existed call the same outcome ``attack_success_rate``)."""
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
    """Lower bound of the paired percentile bootstrap interval of ``delta`` (see ``clustered_by``)."""
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
    """``exact-binomial`` (b + c < 25) or ``chi-square-continuity-corrected``; with pairs clustered by item,
    ``clustered-exact-sign`` (fewer than 25 discordant items) or ``clustered-chi-square`` (Durkalski)."""
    judge_id: str = ""
    """The judge(s) whose verdicts were compared, ``<id>@<version>`` (comma-separated if several)."""
    clustered_by: Literal["pair", "item"] = "pair"
    """``pair``: every (item, variant) pair resampled on its own and McNemar's test on pairs (every record
    written before this field). ``item``: all pairs of one item (its variants) resampled together (a cluster
    bootstrap), and McNemar's test on per-item discordance when an item has several pairs
    (``stats.mcnemar``); the same as ``pair`` when every item has one pair."""
    n_clusters: int | None = None
    """``item``: the distinct items behind the ``n`` pairs; None for ``pair``."""


class JudgeValidationRecord(BaseRecord):
    """A refusal judge measured against human labels before it scored this run (``battery.judge_validation``).

    The judge read every labelled response; its verdicts were compared with the
    people's labels ("refusal" is the positive class). The labels file is named
    and hashed, so the figure can be traced to exactly the data it was measured on.
    """

    kind: Literal["judge_validation"] = "judge_validation"
    judge_id: str
    """The judge's id (e.g. ``keyword-refusal``)."""
    judge_version: str
    """The judge's version."""
    judge_digest: str
    """The judge's configuration digest, as in the battery record."""
    role: str = "primary"
    """What the judge does in the run: ``primary`` (its verdicts give the scores), ``secondary`` or ``over-refusal``."""
    labels_file: str
    """The labels file's name (its full path is in the ``dataset:judge_labels`` artifact)."""
    labels_digest: str
    """``sha256:<hex>`` of the labels file's bytes."""
    labels_format: Literal["ours", "xstest", "harmbench", "wildguard"]
    """How the file was read: our format or a public human-labelled set."""
    n: int
    """Labelled rows judged."""
    skipped: int = 0
    """Rows the format leaves unlabelled (not judged)."""
    accuracy: float
    """Share of rows where the judge's verdict equals the human label."""
    kappa: float
    """Cohen's kappa between the judge and the people."""
    precision: float | None
    """Of the rows the judge called refusal, the share people did; None when it called none."""
    recall: float | None
    """Of the rows people called refusal, the share the judge did; None when people called none."""
    f1: float | None
    """F1 for "refusal"; None when precision and recall are both undefined."""
    intervals: dict[str, dict[str, float | None]]
    """Percentile-bootstrap 95% intervals, ``{"accuracy"|"kappa"|"f1": {"low": .., "high": ..}}`` (rows resampled)."""
    confusion: dict[str, int]
    """``tp``, ``fp``, ``fn``, ``tn`` with "refusal" positive, the judge against the human label."""
    n_resamples: int
    """Bootstrap resamples."""
    seed: int
    """Bootstrap seed."""
    per_style: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per ``style`` tag of the rows: ``{"n": .., "accuracy": ..}``."""
    human_refusal_rate: float
    """Share of rows people labelled refusal."""
    judge_refusal_rate: float
    """Share of rows the judge called refusal."""
    disagreements: list[str] = Field(default_factory=list)
    """Up to 100 rows (``file:row``) where the judge and the people differ, for a person to read."""
