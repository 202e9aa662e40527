"""``assure run --dry-run``: check a plan, list the stages it would run with their sizes, and estimate
the model's peak memory on the chosen device, without loading weights or writing anything.

The estimate is arithmetic on the model's config.json (its parameters are counted on PyTorch's ``meta``
device, which allocates nothing). ``estimate_memory`` is a pure function of the shapes and the device's
memory, so it is testable without a GPU. Activations use the per-layer approximation of Korthikanti et al.
2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv:2205.05198, section 4.1):
``s·b·h·(34 + 5·a·s/h)`` bytes per layer with 16-bit activations. It is an estimate, not a measurement:
allocator fragmentation, CUDA context and temporary buffers come on top, hence the 80 % margin.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["FITS", "TIGHT", "WILL NOT FIT"]
TIGHT_FROM = 0.8  # of the device's memory: below is FITS, up to 1.0 TIGHT, above WILL NOT FIT
CHARS_PER_TOKEN = 3  # prompts are not tokenised in a dry run; 3 characters a token errs on the long side
TEMPLATE_TOKENS = 32  # the chat template's role markers around a prompt
LORA_BYTES = 4 + 4 + 8  # adapter weight, gradient and two AdamW states, all float32 (peft upcasts adapters)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model's config."""

    parameters: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    linear_shapes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Last name of each ``nn.Linear`` (``q_proj``...) -> its (in, out) features, one entry per module."""

    def lora_parameters(self, r: int, target_modules: list[str]) -> int:
        """Trainable parameters of a LoRA adapter: r·(in + out) per adapted linear layer, as peft builds it."""
        return sum(r * (i + o) for name in target_modules for i, o in self.linear_shapes.get(name, []))


@dataclass(frozen=True)
class Training:
    """One fine-tune stage as the memory estimate sees it."""

    name: str
    method: Literal["full", "lora"]
    batch_size: int
    max_length: int
    trainable: int


@dataclass
class MemoryEstimate:
    """Peak bytes by component, the device's bytes, and the verdict."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    kv_cache: int
    peak: int
    peak_phase: str
    device_total: int
    fraction: float
    verdict: Verdict


def dtype_bytes(dtype: str) -> int:
    return 2 if dtype in ("bfloat16", "float16") else 4


def activation_bytes(shape: ModelShape, batch: int, seq: int, act_bytes: int) -> int:
    """Stored activations for one training step (Korthikanti et al. 2022), scaled from 16-bit to
    ``act_bytes``, plus the logits and their float32 log-softmax for the loss."""
    per_layer = seq * batch * shape.hidden_size * (34 + 5 * shape.num_heads * seq / shape.hidden_size)
    layers = per_layer * shape.num_layers * act_bytes / 2
    logits = batch * seq * shape.vocab_size * (act_bytes + 4)
    return int(layers + logits)


def kv_cache_bytes(shape: ModelShape, batch: int, tokens: int, nbytes: int) -> int:
    """Keys and values of every layer for ``batch`` sequences of ``tokens``."""
    return 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * batch * tokens * nbytes


def verdict_for(fraction: float) -> Verdict:
    return "FITS" if fraction < TIGHT_FROM else "TIGHT" if fraction <= 1.0 else "WILL NOT FIT"


def estimate_memory(shape: ModelShape, *, dtype: str, device_total: int, trainings: list[Training],
                    gen_batch: int, gen_tokens: int) -> MemoryEstimate:
    """The peak over the run's phases: generation (weights + KV cache) and each fine-tune (weights +
    gradients + AdamW states + activations). Full fine-tunes keep gradients and both AdamW moments in the
    model's dtype; LoRA keeps only the adapter's, in float32."""
    nb = dtype_bytes(dtype)
    weights = shape.parameters * nb
    kv = kv_cache_bytes(shape, gen_batch, gen_tokens, nb)
    phases: list[tuple[str, int, int, int, int]] = [("generation", 0, 0, 0, kv)]
    for t in trainings:
        if t.method == "full":
            grads, optim = t.trainable * nb, t.trainable * 2 * nb
        else:  # the adapter's own float32 weights count with its gradients
            grads, optim = t.trainable * (LORA_BYTES - 8), t.trainable * 8
        phases.append((t.name, grads, optim, activation_bytes(shape, t.batch_size, t.max_length, nb), 0))
    name, grads, optim, acts, kv_used = max(phases, key=lambda p: sum(p[1:]))
    peak = weights + grads + optim + acts + kv_used
    fraction = peak / device_total if device_total > 0 else float("inf")
    return MemoryEstimate(weights, grads, optim, acts, kv, peak, name, device_total, round(fraction, 4),
                          verdict_for(fraction))


# ----------------------------------------------------------------------------- from a config


def shape_from_config(config: Any, *, trust_remote_code: bool = False) -> ModelShape:
    """The shape of a transformers config, its parameters counted on the ``meta`` device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    linear: dict[str, list[tuple[int, int]]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linear.setdefault(name.rsplit(".", 1)[-1], []).append((module.in_features, module.out_features))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()), hidden_size=text.hidden_size,
        num_layers=text.num_hidden_layers, num_heads=heads,
        num_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        vocab_size=text.vocab_size, linear_shapes=linear)


def model_config(spec: str, *, trust_remote_code: bool = False) -> tuple[Any, str]:
    """The config of ``builtin:…`` (from its builder's settings: nothing is built) or a local folder's
    config.json, and where it came from."""
    from transformers import AutoConfig, LlamaConfig

    from .models.loading import BUILTIN_PREFIX, resolve_model_path

    if spec.startswith(BUILTIN_PREFIX) and spec[len(BUILTIN_PREFIX):] in ("tiny-chat", "tiny-chat-aligned"):
        from .models.tiny import MODEL_CONFIG, VOCAB_SIZE  # the aligned model is the same network, retrained

        return LlamaConfig(vocab_size=VOCAB_SIZE, **MODEL_CONFIG), f"{spec} (built-in settings)"
    path = resolve_model_path(spec)
    return AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code), \
        str(path / "config.json")


def device_memory(device: Any) -> tuple[int, str]:
    """Total bytes of the device's memory and a name for it."""
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device.index or 0)
        return int(props.total_memory), props.name
    with contextlib.suppress(ValueError, OSError, AttributeError):  # POSIX: pages × page size, as MemTotal
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "CPU RAM"
    return 0, "CPU RAM (unknown size)"


# ----------------------------------------------------------------------------- the plan's stages


def _evaluation(name: str, plan: Any, battery: Any, extra: list) -> dict:
    from .battery.runner import planned_probes

    sampling = plan.battery.sampling
    seeds = len(sampling.seeds()) if sampling.enabled else 0
    suites = [{"suite": s.name, "items": len(s.items), "variants": s.solver.n_variants, "probes": s.n_probes()}
              for s in battery.suites]
    suites += [{"suite": e.suite.name, "items": len(e.suite.items), "variants": e.suite.solver.n_variants,
                "probes": e.suite.n_probes()} for e in extra]
    generations = planned_probes(battery, sampling) + sum(e.suite.n_probes() for e in extra)
    return {"stage": name, "kind": "evaluate", "suites": suites, "items": len(battery.items),
            "probes": sum(s["probes"] for s in suites), "sampled_seeds": seeds, "generations": generations,
            "batch_size": plan.battery.batch_size, "max_new_tokens": plan.battery.max_new_tokens}


def _training(name: str, spec: Any, trainable: int, examples: int | None) -> dict:
    accum = getattr(spec, "grad_accum", 1)
    return {"stage": name, "kind": "fine-tune", "method": spec.method, "recipe": spec.recipe,
            "steps": spec.max_steps, "batch_size": spec.batch_size, "grad_accum": accum,
            "max_length": spec.max_length, "max_tokens": spec.max_steps * spec.batch_size * accum * spec.max_length,
            "trainable_parameters": trainable, "examples": examples}


def _trainable(spec: Any, shape: ModelShape) -> int:
    """The parameters a fine-tune (a FinetuneSpec) updates; a LoRA naming no linear layer of the model is
    bad input, which the trainer would find only after the base model's evaluation."""
    from .plan import PlanError

    if spec.method == "full":
        return shape.parameters
    targets = [t for t in spec.lora.target_modules if t in shape.linear_shapes]
    if not targets:
        raise PlanError(f"none of the LoRA target_modules {spec.lora.target_modules} exist in this model; its "
                        f"linear layers are named: {', '.join(sorted(shape.linear_shapes))}")
    return shape.lora_parameters(spec.lora.r, targets)


def _prompt_tokens(battery: Any, extra: list) -> int:
    prompts = [i.prompt for i in battery.items] + [i.prompt for e in extra for i in e.suite.items]
    return max((len(p) for p in prompts), default=0) // CHARS_PER_TOKEN + TEMPLATE_TOKENS


def _estimated_model(plan: Any, c: Any) -> tuple[str, bool] | None:
    """The model folder (or built-in) whose memory matters, and whether its code is trusted; None for an
    endpoint target, which generates elsewhere."""
    from .models.loading import BUILTIN_PREFIX, check_folder, resolve_model_path

    if c.supplied:
        target = c.supplied["tuned"]
        return None if target.model_path is None else (str(target.model_path), target.spec.trust_remote_code)
    spec = plan.model
    if not spec.path.startswith(BUILTIN_PREFIX):  # what load_model checks before it reads a weight
        check_folder(resolve_model_path(spec.path), allow_pickle=spec.allow_pickle,
                     trust_remote_code=spec.trust_remote_code)
    return spec.path, spec.trust_remote_code


def dry_run_report(plan: Any, *, device_total: int | None = None) -> dict:
    """What ``assure run PLAN --dry-run`` prints: raises the run's own bad-input errors; loads no weights
    and writes nothing. ``device_total`` replaces the device's memory (tests)."""
    from .inputs import check_inputs

    c = check_inputs(plan)
    dtype = str(c.dtype).replace("torch.", "")
    total, device_name = device_memory(c.device) if device_total is None else (device_total, "given")
    which = _estimated_model(plan, c)
    shape = None
    if which is not None:
        config, source = model_config(which[0], trust_remote_code=which[1])
        shape = shape_from_config(config, trust_remote_code=which[1])
    stages: list[dict] = []
    trainings: list[Training] = []
    if c.supplied:
        if "base" in c.supplied:
            stages.append(_evaluation("evaluate baseline", plan, c.battery, c.extra))
        stages.append(_evaluation("evaluate target", plan, c.battery, c.extra))
    else:
        assert shape is not None  # a fine-tune run always has a local model
        stages.append(_evaluation("evaluate base", plan, c.battery, c.extra))
        ft = _trainable(plan.finetune, shape)
        stages.append(_training("safety fine-tune", plan.finetune, ft, len(c.safety) + len(c.utility or [])))
        trainings.append(Training("safety fine-tune", plan.finetune.method, plan.finetune.batch_size,
                                  plan.finetune.max_length, ft))
        stages.append(_evaluation("evaluate tuned", plan, c.battery, c.extra))
        if plan.stress.enabled:
            from .finetune.recipes import stress_spec

            st = _trainable(stress_spec(plan.stress), shape)
            stages.append(_training("persistence stress fine-tune", stress_spec(plan.stress), st, None))
            trainings.append(Training("persistence stress fine-tune", plan.stress.method, plan.stress.batch_size,
                                      plan.stress.max_length, st))
            stages.append(_evaluation("evaluate stressed", plan, c.battery, c.extra))
    stages.append({"stage": "verdict and evidence seal", "kind": "record"})
    stages.append({"stage": "packs and packs seal", "kind": "render", "regimes": list(plan.report.regimes)})
    out: dict[str, Any] = {
        "plan": plan.name, "device": {"type": c.device.type, "name": device_name, "dtype": dtype,
                                      "total_bytes": total},
        "stages": stages, "model": None, "memory": None,
    }
    if shape is not None:
        gen_tokens = _prompt_tokens(c.battery, c.extra) + plan.battery.max_new_tokens
        est = estimate_memory(shape, dtype=dtype, device_total=total, trainings=trainings,
                              gen_batch=plan.battery.batch_size, gen_tokens=gen_tokens)
        out["model"] = {"source": source, "parameters": shape.parameters, "layers": shape.num_layers,
                        "hidden_size": shape.hidden_size, "heads": shape.num_heads, "kv_heads": shape.num_kv_heads,
                        "vocab_size": shape.vocab_size}
        out["memory"] = asdict(est) | {"generation_tokens": gen_tokens, "note": NOTE}
    return out


NOTE = ("An estimate from config.json, not a measurement: activations by Korthikanti et al. 2022 "
        "(arXiv:2205.05198), prompts at 3 characters a token; allocator overhead comes on top.")


# ----------------------------------------------------------------------------- printing


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def print_report(report: dict, *, as_json: bool) -> None:
    from .console import out_console

    if as_json:
        print(json.dumps(report, indent=2))
        return
    dev = report["device"]
    out_console.print(f"[bold]Dry run of[/bold] {_plain(report['plan'])}: nothing loaded, nothing written.")
    out_console.print(f"Device: {dev['type']} ({_plain(dev['name'])}, {gib(dev['total_bytes'])}), {dev['dtype']}")
    listed = False
    for i, s in enumerate(report["stages"], 1):
        out_console.print(f"{i}. [bold]{s['stage']}[/bold]{_sizes(s)}")
        for suite in [] if listed else s.get("suites", []):  # every evaluation runs the same battery: list it once
            listed = True
            out_console.print(f"     {_plain(suite['suite'])}: {suite['items']} items × {suite['variants']} "
                              f"variant(s) = {suite['probes']} probes")
    m, mem = report["model"], report["memory"]
    if mem is None:
        out_console.print("Memory: the target is an endpoint; it generates elsewhere.")
        return
    out_console.print(f"Model: {_plain(m['source'])}: {m['parameters']:,} parameters, {m['layers']} layers, "
                      f"hidden {m['hidden_size']}, {m['heads']} heads")
    parts = (f"KV cache {gib(mem['kv_cache'])}" if mem["peak_phase"] == "generation" else
             f"gradients {gib(mem['gradients'])} + AdamW states {gib(mem['optimizer'])} + activations "
             f"{gib(mem['activations'])} (generation's KV cache: {gib(mem['kv_cache'])})")
    out_console.print(f"Peak memory, during {mem['peak_phase']}: weights {gib(mem['weights'])} + {parts}")
    style = {"FITS": "green", "TIGHT": "yellow"}.get(mem["verdict"], "red")
    out_console.print(f"[bold]{gib(mem['peak'])} of {gib(dev['total_bytes'])} "
                      f"({mem['fraction']:.0%}): [{style}]{mem['verdict']}[/][/bold]")
    out_console.print(f"[dim]{mem['note']}[/dim]")


def _sizes(s: dict) -> str:
    if s["kind"] == "evaluate":
        seeds = f" + {s['sampled_seeds']} sampled seeds" if s["sampled_seeds"] else ""
        return (f": {s['items']} items, {s['probes']} probes{seeds}, {s['generations']} generations "
                f"(batch {s['batch_size']}, up to {s['max_new_tokens']} new tokens)")
    if s["kind"] == "fine-tune":
        return (f": {s['method']} {s['recipe']}, {s['steps']} steps × {s['batch_size']} × {s['grad_accum']} "
                f"× {s['max_length']} tokens = {s['max_tokens']:,} tokens at most, "
                f"{s['trainable_parameters']:,} trainable parameters")
    if s["kind"] == "render":
        return ": " + ", ".join(s["regimes"])
    return ""


def _plain(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))
