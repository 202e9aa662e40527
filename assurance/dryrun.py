"""``assure run --dry-run``: check a plan, list the stages it would run with their sizes, and estimate
the model's peak memory on the chosen device, without loading weights or writing anything.

The estimate is arithmetic on the model's config.json (its parameters are counted on PyTorch's ``meta``
device, which allocates nothing). ``estimate_memory`` is a pure function of the shapes and the device's
memory (``assurance/memory_model.py``), so it is testable without a GPU. Activations depend on the
attention implementation transformers picks for the model (read from the model built on ``meta``): SDPA
keeps no s×s tensor, eager keeps two per head. It is an estimate, not a measurement: allocator
fragmentation and the CUDA context come on top, hence the 80 % margin.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from typing import Any

from .memory_model import ModelShape, Training, estimate_memory

CHARS_PER_TOKEN = 3  # prompts are not tokenised in a dry run; 3 characters a token errs on the long side
TEMPLATE_TOKENS = 32  # the chat template's role markers around a prompt


# ----------------------------------------------------------------------------- from a config


def shape_from_config(config: Any, *, trust_remote_code: bool = False) -> ModelShape:
    """The shape of a transformers config, its parameters counted on the ``meta`` device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .models.sharded import decoder_layer_classes

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    linear: dict[str, list[tuple[int, int]]] = {}
    units = decoder_layer_classes(model)  # FSDP's units
    layer = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linear.setdefault(name.rsplit(".", 1)[-1], []).append((module.in_features, module.out_features))
        if type(module).__name__ in units:
            layer = max(layer, sum(p.numel() for p in module.parameters()))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    # what transformers chose when it built the model (sdpa unless the config or the model class forces eager)
    attention = getattr(model.config, "_attn_implementation", None) or "eager"
    dropout = next((getattr(text, k) for k in ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob")
                    if isinstance(getattr(text, k, None), float | int)), 0.0)
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()), hidden_size=text.hidden_size,
        num_layers=text.num_hidden_layers, num_heads=heads,
        num_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        vocab_size=text.vocab_size, linear_shapes=linear,
        intermediate_size=getattr(text, "intermediate_size", None) or 4 * text.hidden_size,
        attention=str(attention), attention_dropout=float(dropout), layer_parameters=layer)


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


def _fine_tune(name: str, spec: Any, trainable: int, examples: int | None) -> dict:
    accum = getattr(spec, "grad_accum", 1)
    return {"stage": name, "kind": "fine-tune", "method": spec.method, "recipe": spec.recipe,
            "steps": spec.max_steps, "batch_size": spec.batch_size, "grad_accum": accum,
            "max_length": spec.max_length, "max_tokens": spec.max_steps * spec.batch_size * accum * spec.max_length,
            "trainable_parameters": trainable, "examples": examples}


def _training(name: str, spec: Any, shape: ModelShape, autocast: bool) -> Training:
    """A fine-tune (a FinetuneSpec) as the estimate sees it; a LoRA naming no linear layer of the model is
    bad input, which the trainer would find only after the base model's evaluation."""
    from .plan import PlanError

    sharded = spec.parallel == "fsdp"
    if spec.method == "full":
        return Training(name, "full", spec.batch_size, spec.max_length, shape.parameters, autocast=autocast,
                        sharded=sharded)
    targets = [t for t in spec.lora.target_modules if t in shape.linear_shapes]
    if not targets:
        raise PlanError(f"none of the LoRA target_modules {spec.lora.target_modules} exist in this model; its "
                        f"linear layers are named: {', '.join(sorted(shape.linear_shapes))}")
    return Training(name, "lora", spec.batch_size, spec.max_length, shape.lora_parameters(spec.lora.r, targets),
                    shape.adapter_inputs(spec.lora.r, targets), autocast, sharded)


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


def dry_run_report(plan: Any, *, device_total: int | None = None, processes: int | None = None) -> dict:
    """What ``assure run PLAN --dry-run`` prints: raises the run's own bad-input errors; loads no weights
    and writes nothing. ``device_total`` replaces the device's memory (tests). ``processes``: estimate one
    process's share of a run launched with that many (default: the launcher's ``WORLD_SIZE``, else 1)."""
    from .distributed import launched
    from .finetune.settings import bf16_autocast
    from .inputs import check_inputs

    processes = processes or launched().world

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
        autocast = bf16_autocast(c.device, c.dtype)  # the trainer's own rule
        ft = _training("safety fine-tune", plan.finetune, shape, autocast)
        stages.append(_fine_tune(ft.name, plan.finetune, ft.trainable, len(c.safety) + len(c.utility or [])))
        trainings.append(ft)
        stages.append(_evaluation("evaluate tuned", plan, c.battery, c.extra))
        if plan.stress.enabled:
            from .finetune.recipes import stress_spec

            stress = stress_spec(plan.stress)
            st = _training("persistence stress fine-tune", stress, shape, autocast)
            stages.append(_fine_tune(st.name, stress, st.trainable, None))
            trainings.append(st)
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
                              gen_batch=plan.battery.batch_size, gen_tokens=gen_tokens, processes=processes,
                              sharded_weights=plan.model.parallel == "fsdp")
        out["model"] = {"source": source, "parameters": shape.parameters, "layers": shape.num_layers,
                        "layer_parameters": shape.layer_unit,
                        "hidden_size": shape.hidden_size, "heads": shape.num_heads, "kv_heads": shape.num_kv_heads,
                        "vocab_size": shape.vocab_size, "attention": shape.attention}
        out["memory"] = asdict(est) | {"generation_tokens": gen_tokens, "note": NOTE}
    return out


NOTE = ("An estimate from config.json, not a measurement: activations counted per operation for the attention "
        "implementation shown, prompts at 3 characters a token; allocator overhead comes on top.")


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
                      f"hidden {m['hidden_size']}, {m['heads']} heads, {_plain(m['attention'])} attention "
                      f"({'stores' if m['attention'] == 'eager' else 'keeps no'} s×s attention scores)")
    parts = (f"KV cache {gib(mem['kv_cache'])}" if mem["peak_phase"] == "generation" else
             f"gradients {gib(mem['gradients'])} + AdamW states {gib(mem['optimizer'])} + activations "
             f"{gib(mem['activations'])} (generation's KV cache: {gib(mem['kv_cache'])})")
    each = f" per process ({mem['processes']} processes, one GPU each)" if mem.get("processes", 1) > 1 else ""
    out_console.print(f"Peak memory{each}, during {mem['peak_phase']}: weights {gib(mem['weights'])} + {parts}")
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
