"""Reading a ledger payload and telling, quickly, whether it is in RFC 8785 canonical form.

``assure verify`` checks every record's canonical form, and the canonical encoder (``rfc8785``) is pure
Python: it was 70% of verifying a ledger. So each payload is parsed with the standard library's C decoder,
whose hooks note its floats, long integers and NaN/Infinity, its objects' keys are checked for order, and
it is written back with pydantic-core's Rust writer (insertion order, no spaces, UTF-8 kept, the
same string escapes as RFC 8785: tests/test_verify_fast.py compares them on every character). Where that
reproduces the payload byte for byte, with every object's keys in RFC 8785 order (UTF-16 code units), the
two encoders can still differ only on numbers: a float whose shortest form is not ECMAScript's (``1e-07``,
``1.0``, ``-0.0``), checked float by float; an integer beyond 2**53 or a NaN, which RFC 8785 refuses (any
integer of 16 digits or more, and any NaN or Infinity, goes to the canonical encoder). Every payload that
does not pass all of this is decided by the canonical encoder itself, so the answer is always the
canonical encoder's, raising as it raises.

Before all that, the usual record (one flat object, keys in order, its values only strings, true, false,
null, integers within 2**53 and lists of strings, true, false and null: a sample) takes a shorter road:
pydantic-core's Rust parser reads it, and its writer must give the payload back byte for byte. For such
values RFC 8785 writes what the Rust writer writes, so the round trip is the canonical encoder's answer;
anything else takes the long road.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError, from_json, to_json

from .hashing import canonical_json

_SCALARS = frozenset({str, bool, type(None)})
_SAFE_INT = 2**53 - 1


def _plain_values(obj: dict[str, Any]) -> bool:
    """Whether a flat object's values are only strings, true/false/null, integers within 2**53 and lists of
    strings and true/false/null: values that RFC 8785 and pydantic-core's writer write alike."""
    for v in obj.values():
        t = type(v)
        if t is str or v is None or t is bool:
            continue
        if t is int:
            if -_SAFE_INT <= v <= _SAFE_INT:
                continue
        elif t is list and _SCALARS.issuperset(map(type, v)):
            continue
        return False
    return True


def _utf16(key: str) -> bytes:
    return key.encode("utf-16be", "surrogatepass")


def _in_order(obj: dict[str, Any]) -> bool:
    """Whether the object's own keys are in RFC 8785 order (code points equal UTF-16 order for ASCII keys;
    other keys are compared by their UTF-16 code units)."""
    keys = list(obj)
    if keys == sorted(keys) and "".join(keys).isascii():
        return True
    return keys == sorted(keys, key=_utf16)


def _all_in_order(value: Any) -> bool:
    """Whether every object in ``value``, at any depth, has its keys in RFC 8785 order."""
    if isinstance(value, dict):
        return _in_order(value) and all(_all_in_order(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_in_order(v) for v in value)
    return True


class CanonicalReader:
    """One per verification: its decoder's hooks note what the payload being read holds."""

    def __init__(self) -> None:
        self._floats: list[str] = []
        self._doubt = False
        self._decode = json.JSONDecoder(parse_float=self._float, parse_int=self._int,
                                        parse_constant=self._constant).decode

    def _float(self, text: str) -> float:
        self._floats.append(text)
        return float(text)

    def _int(self, text: str) -> int:
        if len(text) > 15:  # possibly beyond 2**53 (9007199254740991 has 16 digits): let the encoder decide
            self._doubt = True
        return int(text)

    def _constant(self, name: str) -> float:
        self._doubt = True  # NaN or Infinity: not JSON, and RFC 8785 refuses it
        return float(name)

    def __call__(self, payload: str, body: bytes) -> tuple[Any, bool]:
        """The parsed payload (equal to ``json.loads(payload)``), and whether ``body``, its UTF-8, is canonical."""
        try:
            obj = from_json(body, allow_inf_nan=False)
            flat = type(obj) is dict and body.count(b"{") == 1
            if flat and _in_order(obj) and _plain_values(obj) and to_json(obj) == body:
                return obj, True
        except (ValueError, PydanticSerializationError):  # not JSON, NaN, a lone surrogate: the long road says
            pass
        return self._read(payload, body)

    def _read(self, payload: str, body: bytes) -> tuple[Any, bool]:
        """``__call__``'s long road: the standard library's decoder noting floats and long integers, the
        Rust writer tried first, the canonical encoder deciding whatever that leaves in doubt."""
        self._floats.clear()
        self._doubt = False
        obj = self._decode(payload)
        # A record is one object of scalars and lists nearly always: one "{" and its keys are all there is.
        flat = payload.count("{") == 1 and isinstance(obj, dict)
        try:
            same = not self._doubt and (_in_order(obj) if flat else _all_in_order(obj)) and to_json(obj) == body
        except (ValueError, PydanticSerializationError):  # a lone surrogate: the encoder refuses it too
            same = False
        if same and all(canonical_json(float(f)) == f.encode("ascii") for f in self._floats):
            return obj, True
        return obj, canonical_json(obj) == body
