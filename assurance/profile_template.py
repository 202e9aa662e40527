"""``assure profile template``: a commented YAML skeleton of every profile field.

Generated from ``profile.OrgProfile`` (field names, titles, docstrings, types), so
it cannot drift from what ``assure profile check`` accepts. Every line is
commented out, so the skeleton as printed is a valid, empty profile; remove the
leading ``# `` from the lines you fill in.
"""

from __future__ import annotations

import textwrap
import types
from datetime import date
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .profile import OrgProfile

WIDTH = 100
HAZARD_KEY_HELP = ("hazard key: harmful:<category>, over-refusal:<category>, signposting:<category>, prefill, "
                   "jailbreak or persistence (as the hazard log prints it)")

HEADER = """\
Organisation profile for `report.profile` (or `assure render RUN --profile FILE`).
Schema: evidence/schema/profile.schema.json. Check a filled-in file with `assure profile check FILE`.
Every field is optional, except those marked (required) inside a part you fill in. A field a regime
needs and this file leaves out is printed in the pack as a red NOT PROVIDED row.
Remove the leading "# " from the lines you fill in."""


def profile_template() -> str:
    """The skeleton, every line commented out."""
    body = [f"# # {line}" if line else "#" for line in HEADER.splitlines()] + ["#"]
    body += [f"# {line}" for line in _model_lines(OrgProfile, 0)]
    return "\n".join(body) + "\n"


def _model_lines(model: type[BaseModel], indent: int) -> list[str]:
    out: list[str] = []
    for name, info in model.model_fields.items():
        out += _field_lines(name, info, indent)
    return out


def _field_lines(name: str, info: FieldInfo, indent: int) -> list[str]:
    pad = " " * indent
    annotation, optional = _unwrap(info.annotation)
    lines = _comment(pad, info, required=info.is_required() and not optional)
    sub = _model_of(annotation)
    if sub is not None:
        return lines + [f"{pad}{name}:", *_model_lines(sub, indent + 2)]
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation)
        item_model = _model_of(item)
        if item_model is None:
            return lines + [f"{pad}{name}:", f"{pad}  -{_hint(item)}"]
        inner = _model_lines(item_model, indent + 4)
        first = next(i for i, line in enumerate(inner) if not line.lstrip().startswith("#"))
        inner[first] = f"{pad}  - {inner[first].lstrip()}"
        return lines + [f"{pad}{name}:", *inner]
    if origin is dict:
        _, value = get_args(annotation)
        value_model = _model_of(value)
        key_lines = [f"{pad}  # {line}" for line in textwrap.wrap(HAZARD_KEY_HELP, WIDTH - indent)]
        body = _model_lines(value_model, indent + 4) if value_model else [f"{pad}    {_hint(value)}"]
        return lines + [f"{pad}{name}:", *key_lines, f'{pad}  "harmful:self_harm":', *body]
    return lines + [f"{pad}{name}:{_hint(annotation)}"]


def _comment(pad: str, info: FieldInfo, *, required: bool) -> list[str]:
    text = " ".join((info.description or "").split())
    title = info.title or ""
    lead = f"{title}{' (required)' if required else ''}: " if title else ("(required) " if required else "")
    return [f"{pad}# {line}" for line in textwrap.wrap(lead + text, max(40, WIDTH - len(pad)))]


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(annotation))
    return annotation, False


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _hint(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "   # one of: " + " | ".join(str(a) for a in get_args(annotation))
    if annotation is bool:
        return "   # true or false"
    if annotation is date:
        return "   # a date, YYYY-MM-DD"
    return ""
