"""Chat training data: JSONL files of conversations, validated row by row.

Each non-blank line is one conversation::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

The training loss falls on the final assistant turn, so every row must end with
the assistant and hold at least one user message. A bad row is an error that
names the file and the 1-based line, never a silently skipped example: a data
set that quietly shrinks would make the recorded data hash lie about what the
model was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError, field_validator, model_validator

BUILTIN_PREFIX = "builtin:"
DATA_DIR = Path(__file__).resolve().parent / "data"
ROLES = ("system", "user", "assistant")

RowT = TypeVar("RowT", bound=BaseModel)


class DataError(ValueError):
    """Chat data that cannot be used; the message names the file and line."""


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    """Who speaks."""
    content: StrictStr
    """What is said; must hold more than whitespace."""

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a non-empty string")
        return v


class Conversation(BaseModel):
    """One training row. Extra top-level keys (ids, categories) are tolerated and dropped."""

    model_config = ConfigDict(extra="ignore")

    messages: list[Message]
    """The turns, in order; the last one is the training target."""

    @model_validator(mode="after")
    def _shape(self) -> Conversation:
        if not self.messages:
            raise ValueError("messages must not be empty")
        if self.messages[-1].role != "assistant":
            raise ValueError("the last message must be from the assistant")
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages must include at least one user message")
        return self


def _loc(loc: tuple) -> str:
    # ('messages', 1, 'role') -> 'messages[1].role': the form a person looks for in the file
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = _loc(e["loc"])
        kind = e["type"]
        if kind == "literal_error":
            msg = "must be one of " + ", ".join(ROLES)
        elif kind == "extra_forbidden":
            msg = "unknown field"
        elif kind == "missing":
            msg = "is required"
        elif kind in ("string_type", "str_type"):
            msg = "must be a string"
        elif kind == "list_type":
            msg = "must be a list"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            msg = "must be an object"
        else:
            # our own validators: pydantic prefixes "Value error, "
            msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc} {msg}" if loc else msg)
    return "; ".join(parts)


def builtin_path(name: str) -> Path:
    """The packaged file for ``builtin:<name>``, e.g. ``safety`` -> ``.../finetune/data/safety.jsonl``."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"builtin:{name}: not a valid built-in data set name")
    return DATA_DIR / f"{name}.jsonl"


def _resolve(spec: str) -> tuple[Path, str]:
    """(file path, name to show in errors) for a spec."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX):]
        path = builtin_path(name)
        if not path.is_file():
            known = sorted(p.stem for p in DATA_DIR.glob("*.jsonl")) if DATA_DIR.is_dir() else []
            raise DataError(f"{spec}: no such built-in data set (known: {', '.join(known) or 'none'})")
        return path, path.name
    path = Path(spec).expanduser()
    return path, str(path)


def describe_source(spec: str) -> str:
    """A stable name for the data: ``builtin:<name>`` as is, otherwise the absolute path."""
    if spec.startswith(BUILTIN_PREFIX):
        return spec
    return str(Path(spec).expanduser().resolve())


def read_rows(spec: str, model: type[RowT], *, what: str, shape: str) -> list[RowT]:
    """Read a JSONL file (a path or ``builtin:<name>``) and validate every row as ``model``.

    Raises DataError naming the file and the 1-based line of the first bad row; ``what``
    names the rows in the empty-file message, ``shape`` says what a row must hold.
    """
    path, shown = _resolve(spec)
    if not path.is_file():
        raise DataError(f"{shown}: data file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{shown}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    rows: list[RowT] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{shown} line {lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{shown} line {lineno}: a row must be a JSON object with {shape}")
        try:
            rows.append(model.model_validate(row))
        except ValidationError as err:
            raise DataError(f"{shown} line {lineno}: {_explain(err)}") from None
    if not rows:
        raise DataError(f"{shown}: no {what} (the file is empty)")
    return rows


def load_chat_jsonl(spec: str) -> list[list[dict]]:
    """Read and validate a chat JSONL file (a path or ``builtin:<name>``).

    Returns one list of ``{"role", "content"}`` dicts per conversation, in file order.
    Raises DataError naming the file (and line, for a bad row).
    """
    rows = read_rows(spec, Conversation, what="conversations", shape="a 'messages' list")
    return [[m.model_dump() for m in conv.messages] for conv in rows]
