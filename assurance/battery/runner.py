"""Run the battery against a model.

Each suite is a dataset (items), a solver (probes: plain, prefilled or
jailbreak-wrapped) and a scorer (``scorers.py``, chosen by the suite's
``scoring``), composed as in Inspect. All generated probes of all suites go through one
batched, length-sorted generation call per decoding pass, so suites share
batches; multiple-choice capability items are scored by log-likelihood
instead (greedy pass only: they involve no decoding).

Passes: one greedy pass (what the gate reads) and, when sampling is enabled,
one sampled pass per seed. Every sample records its suite, variant, k and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..evidence.records import BatteryRecord, MetricRecord, SampleRecord, Stage
from .judges import BaseJudge, judge_key
from .metrics import compute_metrics
from .probes import Probe
from .scorers import CHOICE, SCORERS, CapabilityScorer, scorers_for
from .suites import Battery, Scoring


def evaluate(
    model,
    tokenizer,
    battery: Battery,
    judge: BaseJudge,
    *,
    stage: Stage,
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    sampling=None,
    generator: Callable[..., list[str]] | None = None,
    benign_judge=None,
    harm_judge: BaseJudge | None = None,
) -> tuple[list[SampleRecord], list[MetricRecord]]:
    """Generate an answer to every probe of every suite, judge it, and compute the rates.

    ``judge`` is the refusal judge: anything with ``id``, ``version`` and the
    batched ``judge(prompts, outputs) -> list[bool]`` of ``battery.judges``.
    Every generated output gets its verdict; each suite's scorer (chosen by
    ``suite.scoring``, see ``scorers.py``) turns outputs and verdicts into
    samples. Attack outputs are judged against the item's own request, not
    the wrapper. ``sampling`` is the plan's ``SamplingSpec``
    (or None): when enabled, every suite also runs once per seed.
    ``generator`` replaces ``models.generate.generate`` (same signature), e.g.
    the vLLM backend. ``progress`` is called with the number of probes done;
    ``planned_probes`` gives the total. ``benign_judge`` (see
    ``wiring.over_refusal_judge``) scores the benign prompts instead of
    ``judge`` when ``judge`` measures harm, so a guard model never feeds the
    over-refusal rate; each sample names the judge that scored it. The attack
    suites' refusal verdicts go the same way, and ``harm_judge`` (see
    ``attack_harm_judge``) also scores them for harm (``scorers.AttackScorer``).
    """
    from ..models.generate import Sampling, generate  # torch-heavy; imported when used

    gen = generator or generate
    probes = [p for s in battery.suites for p in s.probes(tokenizer)]
    passes: list[Sampling | None] = [None]
    if sampling is not None and sampling.enabled:
        passes += [Sampling(seed, sampling.temperature, sampling.top_p) for seed in sampling.seeds()]
    scoring = {s.name: s.scoring for s in battery.suites}
    scorers = scorers_for(attack_harm_judge(judge, harm_judge))
    for p in probes:  # checked before any generation: choices are scored by log-likelihood, a capability scorer's job
        if p.item.choices is not None and not isinstance(scorers[scoring[p.suite]], CapabilityScorer):
            raise ValueError(f"suite {p.suite}: multiple-choice item {p.item.id} needs capability scoring")
    capability = CapabilityScorer()
    samples: list[SampleRecord] = []
    # Choices are scored by the Hugging Face model before any generation: a vLLM generator moves that
    # model off the GPU when its engine starts (and back when it closes).
    all_choices = [p for p in probes if p.item.choices is not None]
    chosen = _choose(model, tokenizer, all_choices, batch_size)
    if all_choices and progress is not None:
        progress(len(all_choices))
    for decoding in passes:
        generated = [p for p in probes if p.item.choices is None]
        outputs = gen(model, tokenizer, [p.messages for p in generated], max_new_tokens=max_new_tokens,
                      batch_size=batch_size, prefills=[p.prefill or "" for p in generated], progress=progress,
                      sampling=decoding)
        by_probe = dict(zip(map(id, generated), outputs, strict=True))
        choice_probes = all_choices if decoding is None else []
        seed = decoding.seed if decoding else None
        refused, judged_by = _judge_outputs(judge, benign_judge, scoring, generated, outputs)
        scored: dict[int, SampleRecord] = {}
        for suite in battery.suites:
            mine = [p for p in generated if p.suite == suite.name]
            records = scorers[suite.scoring].score(
                mine, [by_probe[id(p)] for p in mine], [refused[id(p)] for p in mine],
                [judged_by[id(p)] for p in mine], stage=stage, seed=seed)
            scored.update(zip(map(id, mine), records, strict=True))
        scored.update((id(p), capability.choice_sample(p, chosen[id(p)], stage=stage)) for p in choice_probes)
        samples += [scored[id(p)] for p in probes if id(p) in scored]  # in probe order, suite by suite
    return samples, compute_metrics(samples, stage, scoring)


def _judge_outputs(judge, benign_judge, scoring: dict[str, Scoring], probes: Sequence[Probe], outputs: list[str]
                   ) -> tuple[dict[int, bool], dict[int, str]]:
    """Refusal verdicts by probe, and which judge gave each (``<id>@<version>``): the prompts whose scorer
    says they measure over-refusal go to ``benign_judge`` when it is set."""
    benign = [benign_judge is not None and SCORERS[scoring[p.suite]].over_refusal(p.item) for p in probes]
    refused: dict[int, bool] = {}
    judged_by: dict[int, str] = {}
    for who, pick in ((judge, False), (benign_judge, True)):
        chosen = [(p, o) for p, o, b in zip(probes, outputs, benign, strict=True) if b == pick]
        if not chosen:
            continue
        verdicts = refusals(who, [p.item.prompt for p, _ in chosen], [o for _, o in chosen])
        for (p, _), v in zip(chosen, verdicts, strict=True):
            refused[id(p)], judged_by[id(p)] = v, judge_key(who)
    return refused, judged_by


def attack_harm_judge(judge, harm_judge: BaseJudge | None) -> BaseJudge | None:
    """Who judges harm on the attack suites: the plan's harm judge, else a harm-measuring primary judge
    (a guard model sees harm on every suite), else nobody (the attack suites then report non-refusal only)."""
    if harm_judge is not None:
        return harm_judge
    return judge if getattr(judge, "measures", "refusal") == "harm" else None


def planned_probes(battery: Battery, sampling=None) -> int:
    """How many probes ``evaluate`` will report through ``progress``."""
    total = battery.n_probes()
    if sampling is not None and sampling.enabled:
        n_choice = sum(1 for s in battery.suites for i in s.items if i.choices is not None)
        total += len(sampling.seeds()) * (total - n_choice)
    return total


def refusals(judge, prompts: list[str], outputs: list[str]) -> list[bool]:
    """The refusal judge's verdicts, in one batched call; a judge that miscounts is an error."""
    verdicts = [bool(v) for v in judge.judge(prompts, outputs)]
    if len(verdicts) != len(outputs):
        raise ValueError(f"judge {judge.id} gave {len(verdicts)} verdicts for {len(outputs)} outputs")
    return verdicts


def _choose(model, tokenizer, probes: Sequence[Probe], batch_size: int) -> dict[int, int]:
    if not probes:
        return {}
    from ..models.generate import render_prompts  # torch-heavy, as in evaluate

    prompts = render_prompts(tokenizer, [p.messages for p in probes])
    picks = CHOICE.choose(model, tokenizer, prompts, [p.item.choices or () for p in probes], batch_size)
    return {id(p): c for p, c in zip(probes, picks, strict=True)}


def judges_used(battery: Battery, harm_judge: BaseJudge | None = None) -> list[dict]:
    """Identity, version and digest of every judge and scorer the battery's suites use
    beside the refusal judge (a harm judge with ``role: harm``), for the BatteryRecord."""
    scorers = scorers_for(harm_judge)
    return [entry for suite in battery.suites for entry in scorers[suite.scoring].entries(suite)]


def battery_record(battery: Battery, judge, generation: dict, sampling=None,
                   harm_judge: BaseJudge | None = None) -> BatteryRecord:
    """The BatteryRecord of a run: battery identity and digests, every judge, decoding settings.

    ``generation`` is ``models.generate.generation_settings(...)`` (plus any
    plan sizes to record); ``sampling`` is the plan's ``SamplingSpec``, whose
    seeds and settings are added when it is enabled. ``harm_judge`` is the plan's, as passed to ``evaluate``.
    """
    from ..models.generate import SAMPLER  # torch-heavy, as in evaluate

    gen = dict(generation) | {"n_probes": planned_probes(battery, sampling)}
    if sampling is not None and sampling.enabled:
        gen["sampling"] = {"seeds": sampling.seeds(), "temperature": sampling.temperature,
                           "top_p": sampling.top_p, "sampler": SAMPLER}
    return BatteryRecord(
        battery_id=battery.id, version=battery.version, digest=battery.digest, n_items=len(battery.items),
        categories=battery.categories, item_digests=battery.item_digests(), judge_id=judge.id,
        judge_version=judge.version, judge_digest=judge.digest, generation=gen, suites=battery.suite_names,
        suite_digests=battery.suite_digests(), judges=judges_used(battery, attack_harm_judge(judge, harm_judge)),
    )
