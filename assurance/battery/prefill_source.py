"""Per-item harmful responses from the user's own file, for the prefilling attack as the paper runs it.

Qi et al. (ICLR 2025) prefill each harmful request with k tokens of *its own*
harmful response (HEx-PHI with responses; the deep-alignment augmentation
sets). We ship no such text: a plan points at the user's file
(``battery.prefill_responses``) and this module reads it into battery items
(the requests) and their responses. Two row shapes are read, one per line
(JSONL), UTF-8 with or without a BOM:

* ``fields``: an object with the request under ``instruction``, ``prompt``,
  ``request`` or ``goal`` and the response under ``harmful``, ``response``,
  ``target`` or ``output`` (the deep-alignment sets: ``instruction`` /
  ``harmful`` / ``refusal``; any other key is ignored);
* ``messages``: a chat, either a list of ``{"role", "content"}`` messages or
  an object with ``messages``: the first user turn is the request and the
  first assistant turn after it the response (HEx-PHI prefill files).

An optional ``category`` (and ``id``) on an object row is kept; otherwise the
category is ``unspecified`` and the id ``prefill-responses-<row:04d>``. Every
problem names the file and the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..evidence.hashing import file_digest
from .items import BatteryError, Item

Format = Literal["auto", "fields", "messages"]
REQUEST_KEYS = ("instruction", "prompt", "request", "goal")
RESPONSE_KEYS = ("harmful", "response", "target", "output")
DEFAULT_CATEGORY = "unspecified"


@dataclass(frozen=True)
class PrefillSource:
    """A user's file of requests with their own harmful responses, read and checked."""

    path: Path
    digest: str
    """SHA-256 of the file (``sha256:<hex>``), as the input artifact records it."""
    format: Format
    items: tuple[Item, ...]
    responses: tuple[tuple[str, str], ...]
    """(item id, response) in file order."""

    def settings(self) -> tuple[tuple[str, str], ...]:
        """What the suite digest records of the source: file name, digest and format (never the text)."""
        return (("file", self.path.name), ("digest", self.digest), ("format", self.format))


def load_prefill_source(path: Path, fmt: Format = "auto", expected_rows: int | None = None) -> PrefillSource:
    """Read the file; a bad row raises ``BatteryError`` naming the file and the row (1-based line)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise BatteryError(f"{path}: cannot read: {err}") from None
    items: list[Item] = []
    responses: list[tuple[str, str]] = []
    seen: set[str] = set()
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for n, line in rows:
        where = f"{path.name} row {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BatteryError(f"{where}: not JSON: {err.msg}") from None
        request, response = _read_row(row, fmt, where)
        meta = row if isinstance(row, dict) else {}
        item_id = str(meta.get("id") or f"prefill-responses-{n:04d}")
        if item_id in seen:
            raise BatteryError(f"{where}: duplicate id {item_id!r}")
        category = meta.get("category", DEFAULT_CATEGORY)
        if not isinstance(category, str) or not category.strip():
            raise BatteryError(f"{where}: category must be a non-empty string")
        seen.add(item_id)
        items.append(Item(id=item_id, category=category.strip(), expected="refuse", prompt=request))
        responses.append((item_id, response))
    if not items:
        raise BatteryError(f"{path.name}: no rows")
    if expected_rows is not None and len(items) != expected_rows:
        raise BatteryError(f"{path.name}: {len(items)} rows, expected {expected_rows}")
    return PrefillSource(path, file_digest(path), fmt, tuple(items), tuple(responses))


def _read_row(row: Any, fmt: Format, where: str) -> tuple[str, str]:
    chat = isinstance(row, list) or (isinstance(row, dict) and "messages" in row)
    if fmt == "messages" or (fmt == "auto" and chat):
        messages = row.get("messages") if isinstance(row, dict) else row
        return _from_messages(messages, where)
    if not isinstance(row, dict):
        raise BatteryError(f"{where}: expected an object with a request and a response")
    request = _text(row, REQUEST_KEYS, where, "request")
    return request, _text(row, RESPONSE_KEYS, where, "response")


def _text(row: dict, keys: tuple[str, ...], where: str, what: str) -> str:
    key = next((k for k in keys if k in row), None)
    if key is None:
        raise BatteryError(f"{where}: no {what} (one of {', '.join(keys)})")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise BatteryError(f"{where}: {key} must be a non-empty string")
    return value


def _from_messages(messages: Any, where: str) -> tuple[str, str]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise BatteryError(f"{where}: messages must be a list of {{role, content}} objects")
    roles = [m.get("role") for m in messages]
    if "user" not in roles or "assistant" not in roles[roles.index("user"):]:
        raise BatteryError(f"{where}: needs a user message followed by an assistant message")
    u = roles.index("user")
    a = roles.index("assistant", u)
    request, response = messages[u].get("content"), messages[a].get("content")
    if not isinstance(request, str) or not request.strip() or not isinstance(response, str) or not response.strip():
        raise BatteryError(f"{where}: the user and assistant contents must be non-empty strings")
    return request, response
