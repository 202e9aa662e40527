"""Loading local Hugging Face models safely.

Models come only from local folders (never the network), weights only from
safetensors unless pickles are explicitly allowed (a pickle can run code when
loaded), and custom model code only when remote code is explicitly trusted.
Every failure is a ``ModelLoadError`` that names the folder.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Literal

import torch

from assurance.models.tiny import ensure_tiny_model
from assurance.plan.base import PlanError

BUILTIN_PREFIX = "builtin:"
BUILTINS = ("tiny-chat", "tiny-chat-aligned")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class ModelLoadError(Exception):
    """A model folder that cannot be used; the message always names the path."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot load model at {self.path}: {problem}")


def resolve_device(preference: Literal["auto", "cpu", "cuda"] = "auto") -> tuple[torch.device, torch.dtype]:
    """The device and dtype to run on.

    ``auto`` takes CUDA with bfloat16 where the GPU supports it (float16 would
    risk overflow in models trained in bf16), else CPU with float32 (CPU bf16
    matmuls are slow and change greedy outputs).
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {preference!r}")
    if preference == "cpu":
        return torch.device("cpu"), torch.float32
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.device("cuda"), dtype
    if preference == "cuda":
        # A PlanError (a ValueError) so the commands report it as bad input, exit 2, before anything is written.
        raise PlanError("device: 'cuda' was requested but no CUDA GPU is available "
                        "(torch.cuda.is_available() is False); use 'auto' or 'cpu'")
    return torch.device("cpu"), torch.float32


def resolve_model_path(spec: str) -> Path:
    """A model spec (``builtin:tiny-chat`` or a local folder) as a checked local folder."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX):]
        if name not in BUILTINS:
            raise ModelLoadError(spec, f"unknown built-in model {name!r}; built-ins are {', '.join(BUILTINS)}")
        if name == "tiny-chat-aligned":
            from assurance.models.tiny_aligned import ensure_aligned_model  # lazy: it imports the trainer

            return ensure_aligned_model()
        return ensure_tiny_model()
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelLoadError(path, "folder does not exist (only local folders are supported, "
                                   "the Hugging Face Hub is never contacted)")
    if not path.is_dir():
        raise ModelLoadError(path, "not a folder; expected a Hugging Face model folder")
    if not (path / "config.json").is_file():
        raise ModelLoadError(path, "config.json is missing; expected a Hugging Face model folder")
    return path.resolve()


def _read_config(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(path, f"config.json is unreadable: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(path, "config.json is not a JSON object")
    return config


def check_folder(path: Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> None:
    """Refuse weights we would have to unpickle and code we would have to run."""
    config = _read_config(path)
    if not trust_remote_code:
        custom = [p.name for p in path.glob("*.py")]
        if "auto_map" in config or custom:
            what = ("config.json has auto_map" if "auto_map" in config
                    else f"it ships code ({', '.join(sorted(custom))})")
            raise ModelLoadError(path, f"custom model code is refused: {what}; "
                                       "set model.trust_remote_code only if you have reviewed it")
    files = [p for p in path.iterdir() if p.is_file()]
    safetensors = [p for p in files if p.name.endswith(".safetensors")]
    pickles = [p for p in files if p.name.endswith(PICKLE_SUFFIXES) and p.name != "training_args.bin"]
    if not safetensors:
        if pickles and not allow_pickle:
            raise ModelLoadError(path, f"weights are only pickles ({', '.join(sorted(p.name for p in pickles))}), "
                                       "which can run code when loaded; convert to safetensors or set "
                                       "model.allow_pickle")
        if not pickles:
            raise ModelLoadError(path, "no weights found (expected *.safetensors)")


def load_tokenizer(path: Path, *, trust_remote_code: bool = False):
    """The tokenizer, set up for batched generation: left padding and a pad token."""
    from transformers import AutoTokenizer  # lazy: transformers takes seconds to import

    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises many types; one error for the user
        raise ModelLoadError(path, f"tokenizer failed to load: {exc}") from exc
    # Decoder-only generation appends new tokens on the right, so padding must be left.
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(path, "tokenizer has neither a pad token nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, *, device: torch.device | str, dtype: torch.dtype,
               allow_pickle: bool = False, trust_remote_code: bool = False):
    """``(model, tokenizer)`` from a local folder: eval mode, on ``device`` in ``dtype``."""
    from transformers import AutoModelForCausalLM  # lazy: transformers takes seconds to import

    path = Path(path)
    if not (path / "config.json").is_file():
        resolve_model_path(str(path))  # raises the precise "missing" error
    check_folder(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    kwargs = dict(local_files_only=True, trust_remote_code=trust_remote_code, dtype=dtype)
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        # transformers declares PreTrainedModel.to through @wraps(Module.to), which hides the bound self from mypy.
        model.to(torch.device(device))  # type: ignore[arg-type]
    except Exception as exc:
        raise ModelLoadError(path, f"model failed to load: {type(exc).__name__}: {exc}") from exc
    model.eval()
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def describe_accelerator(device: torch.device | str) -> str:
    """A human-readable name of the hardware, for the evidence record."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda})"
    return f"CPU: {_cpu_name()}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
