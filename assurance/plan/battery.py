"""Plan settings for the evaluation battery: suites, sampling, judges, public benchmarks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..battery.judges.base import JudgeSpec as JudgeSpecBase
from ..battery.judges.base import refuse_secrets
from ..battery.judges.http_judge import HttpJudgeSpec
from ..battery.judges.keyword import LEGACY_KEYWORD_VERSION, KeywordJudgeSpec
from ..battery.judges.model_judge import ModelJudgeSpec
from .base import MAX_SEED, Section

SuiteName = Literal["refusal", "signposting", "prefill", "jailbreak", "capability"]
"""The built-in battery suites (``assurance/battery/suites.py``)."""


class SamplingSpec(Section):
    """Sampled decoding over several seeds, beside the greedy pass (scores move with decoding)."""

    enabled: bool = False
    """Also run every suite with sampling, once per seed; metrics get mean, sd, min and max across seeds."""
    n_seeds: int = Field(3, gt=0, le=100)
    """Number of sampled passes; the seeds are ``first_seed``, ``first_seed + 1``, ..."""
    first_seed: int = Field(0, ge=0, le=MAX_SEED - 100)
    """Seed of the first sampled pass (the last pass's seed stays within 0 .. 2**32 - 1)."""
    temperature: float = Field(0.7, gt=0, le=5)
    """Softmax temperature."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""

    def seeds(self) -> list[int]:
        """The seeds of the sampled passes, in order."""
        return [self.first_seed + i for i in range(self.n_seeds)]


# The one flat JudgeSpec of plans recorded up to d406631: every field of every kind, with these defaults,
# all written into the run_started record's plan. A recorded field at its old default says nothing, so
# it is dropped before the entry is read as its kind's spec; any other stray field is still an error.
_OLD_FLAT_DEFAULTS: dict[str, Any] = {
    "path": None, "model_kind": "guard", "prompt_format": "auto", "true_labels": None,
    "classifier_input": "response", "measures": None, "max_new_tokens": 20, "batch_size": 8, "allow_pickle": False,
    "trust_remote_code": False, "model": None, "base_url": None, "api_key_env": "ASSURE_JUDGE_API_KEY",
    "style": "refusal", "seed": 0, "max_tokens": 16, "timeout": 60.0, "retries": 2, "workers": 4,
    "unparsed": "complied",
}
_JUDGE_SPECS: dict[str, type[JudgeSpecBase]] = {"keyword": KeywordJudgeSpec, "model": ModelJudgeSpec,
                                                 "http": HttpJudgeSpec}


def _read_judge_entry(data: Any) -> Any:
    """A plan's judge entry as its kind's spec reads it: ``kind`` defaults to ``keyword`` (as it always
    has), and the fields an old recorded plan filled in at their defaults are dropped. A keyword entry in
    that old flat shape ran keyword-refusal v1, so it reads as v1."""
    if not isinstance(refuse_secrets(data), dict):
        return data
    data = {"kind": "keyword", **data}
    spec = _JUDGE_SPECS.get(data["kind"]) if isinstance(data["kind"], str) else None
    if spec is None:
        return data  # the union names the known kinds
    if spec is KeywordJudgeSpec and "version" not in data and set(data) & set(_OLD_FLAT_DEFAULTS):
        data["version"] = LEGACY_KEYWORD_VERSION  # only the flat shape of old code wrote these: it ran v1
    own = set(spec.model_fields)
    stray = sorted(f for f in data if f not in own and f in _OLD_FLAT_DEFAULTS and data[f] != _OLD_FLAT_DEFAULTS[f])
    if stray:
        raise ValueError(f"field(s) {stray} do not apply to a {data['kind']} judge")
    return {k: v for k, v in data.items() if k in own or k not in _OLD_FLAT_DEFAULTS}


JudgeSpec = Annotated[KeywordJudgeSpec | ModelJudgeSpec | HttpJudgeSpec, Field(discriminator="kind"),
                      BeforeValidator(_read_judge_entry)]
"""One judge of the refusal suite (``assurance/battery/judges``), by ``kind``: ``keyword`` (our refusal
phrase list), ``model`` (a local Hugging Face guard or classifier folder) or ``http`` (an
OpenAI-compatible chat-completions endpoint). The plan holds settings, never secrets."""


def recorded_judge_versions(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan recorded in a run_started record, with the keyword judge version it ran with made explicit.

    Code before refusal judge v2 recorded keyword entries without a ``version``; read as a new plan, they
    would get today's default (v2) and a resumed run would switch judges half-way. A recorded entry
    without one therefore means v1. New plans always record the version, so this changes nothing for them."""
    battery = plan.get("battery")
    if not isinstance(battery, dict) or not isinstance(battery.get("judges"), list):
        return plan
    judges = [{**j, "version": LEGACY_KEYWORD_VERSION}
              if isinstance(j, dict) and j.get("kind", "keyword") == "keyword" and "version" not in j else j
              for j in battery["judges"]]
    return {**plan, "battery": {**battery, "judges": judges}}


def adopt_recorded_versions(given: BatterySpec, recorded: BatterySpec) -> BatterySpec:
    """``given`` with every keyword judge whose version the plan file left unset taking the version of the
    recorded entry at the same place: the same plan file, given again to resume an old run, is the same plan."""
    judges = [g.model_copy(update={"version": r.version})
              if isinstance(g, KeywordJudgeSpec) and isinstance(r, KeywordJudgeSpec)
              and "version" not in g.model_fields_set else g
              for g, r in zip(given.judges, recorded.judges, strict=False)] + given.judges[len(recorded.judges):]
    return given.model_copy(update={"judges": judges})


def _default_judges() -> list[JudgeSpec]:
    return [KeywordJudgeSpec()]


BenchmarkName = Literal["advbench", "harmbench", "xstest", "strongreject", "jailbreakbench", "simplesafetytests"]
"""Public benchmarks a plan can add beside the battery (``assurance/battery/loaders.py``)."""


class ExtraSuiteSpec(Section):
    """A public benchmark from the user's own file, run beside the battery; reported, never gated."""

    name: BenchmarkName
    """Which benchmark's format the file has; the suite is recorded as ``extra:<name>``."""
    path: str
    """The benchmark file (CSV); a relative path resolves against the plan's folder. Hashed into the ledger."""
    expected_rows: int | None = Field(None, gt=0)
    """Data rows the file must have (e.g. 520 for AdvBench), so a truncated or edited copy is caught."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Loader-specific options: ``functional_categories`` (HarmBench), ``labels`` (XSTest)."""


class PrefillResponsesSpec(Section):
    """The user's file of harmful requests with their own harmful responses (HEx-PHI / deep-alignment format):
    the ``prefill-responses`` suite prefills each request with k tokens of its own response, as Qi et al.
    (ICLR 2025) do."""

    path: str
    """JSONL file; a relative path resolves against the plan's folder. Hashed into the ledger and the suite
    digest; the responses themselves are never copied into records."""
    format: Literal["auto", "fields", "messages"] = "auto"
    """Row shape: ``fields`` (``instruction``/``prompt`` + ``harmful``/``response``, optional ``category``),
    ``messages`` (a user turn then an assistant turn), or ``auto`` (told apart row by row)."""
    expected_rows: int | None = Field(None, gt=0)
    """Rows the file must have, so a truncated or edited copy is caught."""
    k_values: list[Annotated[int, Field(gt=0)]] | None = None
    """Prefilled tokens of each item's own response (the model's tokenizer); null: the battery's k values."""


def _harm_judge(spec: JudgeSpecBase | None) -> JudgeSpecBase | None:
    if spec is not None and spec.judge_measures != "harm":
        raise ValueError("harm_judge must measure harm (a guard model, a classifier with measures: harm, "
                         "or an HTTP judge with style: guard)")
    return spec
class JudgeValidationSpec(Section):
    """A file of human-labelled responses every refusal judge of the run is measured against (``assure judge
    validate`` as part of the run); the result is a ``judge_validation`` evidence record and is shown in the packs."""

    labels: str
    """The labels file (CSV or JSONL: prompt, response, label = refusal|compliance; or a public set, see
    ``format``); a relative path resolves against the plan's folder. Hashed into the ledger."""
    format: Literal["auto", "ours", "xstest", "harmbench", "wildguard"] = "auto"
    """How to read it; ``auto`` detects the format from the columns."""
    n_resamples: int = Field(2000, gt=0, le=100_000)
    """Bootstrap resamples for the 95% intervals."""
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    """Bootstrap seed (0 .. 2**32 - 1); null uses the plan's ``seed``."""


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class ComparisonSpec(Section):
    """Paired per-item comparison of two stages (base -> tuned, tuned -> stress)."""

    n_resamples: int = Field(10_000, gt=0, le=1_000_000)
    """Paired bootstrap resamples for the 95% interval of each difference."""
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    """Bootstrap seed (0 .. 2**32 - 1); null uses the plan's ``seed``."""


class VllmSpec(Section):
    """vLLM engine settings, used when the battery's backend is vLLM (see ``battery.backend``)."""

    tensor_parallel_size: int = Field(1, ge=1, le=64)
    """GPUs one engine shards the model across (tensor parallelism). Must not exceed the GPUs visible to the
    run, and the model's attention heads must divide by it (vLLM checks that when the engine starts)."""
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    """Share of each GPU's whole memory vLLM reserves at start (weights, KV cache). The Hugging Face copy of
    the model is moved off the GPU first, so that share must be free then; lower it when other processes
    share the card."""
    max_model_len: int | None = Field(None, gt=0)
    """Longest prompt plus reply the engine plans its KV cache for; null: the model's own context length."""


class BatterySpec(Section):
    """The fixed evaluation battery."""

    id: str = "assurance-core"
    """Battery identifier; only ``assurance-core`` is built in."""
    version: str = "3"
    """Battery version; old versions stay loadable so old runs re-render. v1: refusal suite only;
    v2: refusal, signposting, prefill, jailbreak and capability suites; v3: v2 with several prefill openers
    per k, one drawn per item."""
    suites: list[SuiteName] | None = None
    """Suites to run, in battery order; null runs all suites of the version (a reduced battery is recorded)."""
    suite_limits: dict[SuiteName, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    """Per-suite cap: the first N items of each category of that suite (applied after ``limit_per_category``)."""
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    """Sampled decoding over several seeds (off by default; the gate reads the greedy pass)."""
    max_new_tokens: int = Field(32, gt=0, le=4096)
    """Tokens generated per prompt."""
    batch_size: int = Field(64, gt=0)
    """Prompts per generation batch. Outputs are meant not to depend on it (tested on CPU,
    greedy and sampled); on GPUs, kernels may round differently at other batch sizes."""
    limit_per_category: int | None = Field(None, gt=0)
    """Evaluate only the first N items of each category (for quick checks; recorded). Applies to
    ``extra_suites`` too."""
    judges: list[JudgeSpec] = Field(default_factory=_default_judges, min_length=1)
    """Refusal judges. The first is the primary judge: its verdicts give the scores and the gate. Every further
    judge also scores the refusal suite's outputs, and the packs report agreement (Cohen's kappa) and the items
    the judges split on. A harm-measuring primary (a guard model) does not score benign prompts: over-refusal
    is then judged by the first refusal-measuring judge listed, or the keyword judge."""
    harm_judge: Annotated[JudgeSpec | None, AfterValidator(_harm_judge)] = None
    """A judge that measures harm (``kind: model`` guard or ``measures: harm`` classifier, or ``kind: http``
    with ``style: guard``) for the attack suites: they then report ``attack_success_rate`` (output judged
    harmful) beside ``non_refusal_rate`` (not refused, by the refusal judge). Without one they report only
    ``non_refusal_rate``, and the packs call it non-refusal under attack, never attack success."""
    prefill_responses: PrefillResponsesSpec | None = None
    """Adds the ``prefill-responses`` suite: each request of the user's file prefilled with k tokens of its
    own harmful response (beside the built-in ``prefill`` suite's content-free openers)."""
    extra_suites: list[ExtraSuiteSpec] = Field(default_factory=list)
    """Public benchmarks run beside the battery (suite ``extra:<name>``); reported in the packs, never gated."""
    comparison: ComparisonSpec = Field(default_factory=ComparisonSpec)
    """Paired base -> tuned and tuned -> stress comparison (bootstrap interval, McNemar's test)."""
    judge_validation: Annotated[list[JudgeValidationSpec], BeforeValidator(_one_or_many)] = Field(
        default_factory=list)
    """Labels files (one entry or a list) that every refusal judge of the run is measured against before the base
    model is evaluated; empty: the packs say the judges were not validated against human labels in this run."""
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    """Generation backend for the evaluated models. ``auto``: vLLM when it is installed and the run is on a CUDA
    device, else transformers; ``vllm``: vLLM or a plan error. vLLM reloads weights from disk, so it serves
    the base model, the tuned model (base + saved adapter, or the saved full model) and a stress model saved in
    full; a LoRA stress model (merged in memory) is evaluated with transformers. The backend used for each stage
    is recorded in the battery record's generation settings. Judges are not affected."""
    vllm: VllmSpec = Field(default_factory=VllmSpec)
    """vLLM engine settings (tensor parallelism, GPU memory share); unused by the transformers backend. The
    LoRA rank the engine is sized for is read from the adapter itself."""

    @model_validator(mode="after")
    def _unique_extra_suites(self) -> BatterySpec:
        names = [e.name for e in self.extra_suites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"extra_suites: {dupes} listed more than once (one file per benchmark)")
        return self
