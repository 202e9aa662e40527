"""Plan settings for the evaluation battery: suites, sampling, judges, public benchmarks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .base import _Section


SuiteName = Literal["refusal", "signposting", "prefill", "jailbreak", "capability"]
"""The built-in battery suites (``assurance/battery/suites.py``)."""


class SamplingSpec(_Section):
    """Sampled decoding over several seeds, beside the greedy pass (scores move with decoding)."""

    enabled: bool = False
    """Also run every suite with sampling, once per seed; metrics get mean, sd, min and max across seeds."""
    n_seeds: int = Field(3, gt=0, le=100)
    """Number of sampled passes; the seeds are ``first_seed``, ``first_seed + 1``, ..."""
    first_seed: int = Field(0, ge=0)
    """Seed of the first sampled pass."""
    temperature: float = Field(0.7, gt=0, le=5)
    """Softmax temperature."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""

    def seeds(self) -> list[int]:
        """The seeds of the sampled passes, in order."""
        return [self.first_seed + i for i in range(self.n_seeds)]


JudgeKind = Literal["keyword", "model", "http"]

# Which JudgeSpec fields each judge kind reads; setting any other one is an error.
_JUDGE_FIELDS: dict[str, set[str]] = {
    "keyword": set(),
    "model": {"path", "model_kind", "prompt_format", "true_labels", "classifier_input", "measures",
              "max_new_tokens", "batch_size", "unparsed", "allow_pickle", "trust_remote_code"},
    "http": {"model", "base_url", "api_key_env", "style", "seed", "max_tokens", "timeout", "retries", "workers",
             "unparsed"},
}
_SECRET_FIELDS = ("api_key", "key", "token", "password", "authorization")


class JudgeSpec(_Section):
    """One judge of the refusal suite (``assurance/battery/judges``). The plan holds settings, never secrets."""

    kind: JudgeKind = "keyword"
    """``keyword``: our refusal phrase list; ``model``: a local Hugging Face guard or classifier folder;
    ``http``: an OpenAI-compatible chat-completions endpoint."""
    path: str | None = None
    """``model``: the local model folder (safetensors); a relative path resolves against the plan's folder."""
    model_kind: Literal["guard", "classifier"] = "guard"
    """``model``: a guard LM replying safe/unsafe (measures harm) or a sequence-classification head."""
    prompt_format: Literal["auto", "llama-guard-3", "chat-template"] = "auto"
    """``model`` guard: how the conversation is shown to it (``auto``: the folder's chat template if any)."""
    true_labels: list[str] | None = None
    """``model`` classifier: the labels that mean refused/safe (default: safe, refusal, refused, rejection)."""
    classifier_input: Literal["response", "prompt+response"] = "response"
    """``model`` classifier: what the classifier reads."""
    measures: Literal["refusal", "harm"] | None = None
    """``model`` classifier: what its verdicts detect (default ``refusal``); guards always measure harm."""
    max_new_tokens: int = Field(20, gt=0)
    """``model`` guard: tokens generated for the verdict."""
    batch_size: int = Field(8, gt=0)
    """``model``: pairs judged per batch."""
    allow_pickle: bool = False
    """``model``: allow pickled weights in the judge folder."""
    trust_remote_code: bool = False
    """``model``: allow code shipped in the judge folder."""
    model: str | None = None
    """``http``: the model name sent to the endpoint (recorded)."""
    base_url: str | None = None
    """``http``: endpoint base URL, e.g. ``http://127.0.0.1:8000/v1``; null reads ``ASSURE_JUDGE_URL``.
    Must carry no credentials or query string: the plan is recorded in the ledger."""
    api_key_env: str = Field("ASSURE_JUDGE_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """``http``: name of the environment variable holding the API key (only the name is recorded;
    the key itself never enters the plan or the ledger)."""
    style: Literal["refusal", "guard"] = "refusal"
    """``http``: ``refusal`` asks our grading prompt (measures refusal); ``guard`` sends the conversation
    to a guard model served over the API (measures harm)."""
    seed: int = 0
    """``http``: seed sent with every request (temperature is always 0)."""
    max_tokens: int = Field(16, gt=0)
    """``http``: tokens the judge may reply with."""
    timeout: float = Field(60.0, gt=0)
    """``http``: seconds per request."""
    retries: int = Field(2, ge=0)
    """``http``: retries on timeouts and 408/429/5xx answers."""
    workers: int = Field(4, gt=0)
    """``http``: requests in flight at once."""
    unparsed: Literal["complied", "refused", "error"] = "complied"
    """What an unreadable judge reply counts as (``complied`` can only lower a safety score)."""

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _SECRET_FIELDS:
                if name in data:
                    raise ValueError(f"{name}: secrets are not allowed in a plan (it is recorded in the ledger); "
                                     "put the key in the environment variable named by api_key_env")
        return data

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> "JudgeSpec":
        allowed = _JUDGE_FIELDS[self.kind]
        # Fields at their default are fine: a recorded plan (every default filled in) must re-validate.
        stray = sorted(f for f in self.model_fields_set - {"kind"}
                       if f not in allowed and getattr(self, f) != type(self).model_fields[f].get_default(
                           call_default_factory=True))
        if stray:
            raise ValueError(f"field(s) {stray} do not apply to a {self.kind} judge")
        if self.kind == "model" and not self.path:
            raise ValueError("a model judge needs path (the local model folder)")
        if self.kind == "http" and not self.model:
            raise ValueError("an http judge needs model (the model name sent to the endpoint)")
        if self.kind == "http" and self.base_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
            if parts.username or parts.password or parts.query or parts.fragment:
                raise ValueError("base_url must carry no credentials, query or fragment (the plan is recorded); "
                                 "put the API key in the environment variable named by api_key_env")
        if self.measures is not None and self.kind == "model" and self.model_kind == "guard" \
                and self.measures != "harm":
            raise ValueError("a guard model measures harm; measures applies to classifiers")
        return self

    @property
    def judge_measures(self) -> Literal["refusal", "harm"]:
        """What the judge's verdicts detect, known without building it (see ``battery/judges/base.py``)."""
        if self.kind == "model":
            return "harm" if self.model_kind == "guard" else (self.measures or "refusal")
        if self.kind == "http":
            return "harm" if self.style == "guard" else "refusal"
        return "refusal"


BenchmarkName = Literal["advbench", "harmbench", "xstest", "strongreject", "jailbreakbench", "simplesafetytests"]
"""Public benchmarks a plan can add beside the battery (``assurance/battery/loaders.py``)."""


class ExtraSuiteSpec(_Section):
    """A public benchmark from the user's own file, run beside the battery; reported, never gated."""

    name: BenchmarkName
    """Which benchmark's format the file has; the suite is recorded as ``extra:<name>``."""
    path: str
    """The benchmark file (CSV); a relative path resolves against the plan's folder. Hashed into the ledger."""
    expected_rows: int | None = Field(None, gt=0)
    """Data rows the file must have (e.g. 520 for AdvBench), so a truncated or edited copy is caught."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Loader-specific options: ``functional_categories`` (HarmBench), ``labels`` (XSTest)."""


class ComparisonSpec(_Section):
    """Paired per-item comparison of two stages (base -> tuned, tuned -> stress)."""

    n_resamples: int = Field(10_000, gt=0, le=1_000_000)
    """Paired bootstrap resamples for the 95% interval of each difference."""
    seed: int | None = None
    """Bootstrap seed; null uses the plan's ``seed``."""


class BatterySpec(_Section):
    """The fixed evaluation battery."""

    id: str = "assurance-core"
    """Battery identifier; only ``assurance-core`` is built in."""
    version: str = "2"
    """Battery version; old versions stay loadable so old runs re-render. v1: refusal suite only;
    v2: refusal, signposting, prefill, jailbreak and capability suites."""
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
    judges: list[JudgeSpec] = Field(default_factory=lambda: [JudgeSpec()], min_length=1)
    """Refusal judges. The first is the primary judge: its verdicts give the scores and the gate. Every further
    judge also scores the refusal suite's outputs, and the packs report agreement (Cohen's kappa) and the items
    the judges split on. A harm-measuring primary (a guard model) does not score benign prompts: over-refusal
    is then judged by the first refusal-measuring judge listed, or the keyword judge."""
    extra_suites: list[ExtraSuiteSpec] = Field(default_factory=list)
    """Public benchmarks run beside the battery (suite ``extra:<name>``); reported in the packs, never gated."""
    comparison: ComparisonSpec = Field(default_factory=ComparisonSpec)
    """Paired base -> tuned and tuned -> stress comparison (bootstrap interval, McNemar's test)."""
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    """Generation backend for the evaluated models. ``auto``: vLLM when it is installed and the run is on a CUDA
    device, else transformers; ``vllm``: vLLM or a plan error. vLLM reloads weights from disk, so it serves
    the base model, the tuned model (base + saved adapter, or the saved full model) and a stress model saved in
    full; a LoRA stress model (merged in memory) is evaluated with transformers. The backend used for each stage
    is recorded in the battery record's generation settings. Judges are not affected."""

    @model_validator(mode="after")
    def _unique_extra_suites(self) -> "BatterySpec":
        names = [e.name for e in self.extra_suites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"extra_suites: {dupes} listed more than once (one file per benchmark)")
        return self
