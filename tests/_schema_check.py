"""A JSON Schema check for the keywords our published schemas use (``jsonschema`` is not a dependency).

It understands exactly the assertion keywords found in ``evidence/schema/`` and raises on any
other, so a schema that grows a new keyword fails loudly instead of passing unchecked.
"""

from __future__ import annotations

import re
from typing import Any

ANNOTATIONS = {"title", "description", "default", "discriminator", "$defs"}
TYPES = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}


def errors(schema: dict, value: Any, root: dict | None = None, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it validates), each naming where."""
    root = root or schema
    out: list[str] = []
    for key, rule in schema.items():
        if key in ANNOTATIONS:
            continue
        if key == "$ref":
            out += errors(_resolve(root, rule), value, root, path)
        elif key == "type":
            if not any(_is(value, t) for t in ([rule] if isinstance(rule, str) else rule)):
                out.append(f"{path}: {value!r} is not of type {rule}")
        elif key == "properties":
            if isinstance(value, dict):
                for name, sub in rule.items():
                    if name in value:
                        out += errors(sub, value[name], root, f"{path}.{name}")
        elif key == "required":
            if isinstance(value, dict):
                out += [f"{path}: missing {name!r}" for name in rule if name not in value]
        elif key == "additionalProperties":
            if isinstance(value, dict):
                extra = [k for k in value if k not in schema.get("properties", {})]
                if rule is False:
                    out += [f"{path}: unexpected {k!r}" for k in extra]
                elif isinstance(rule, dict):
                    for k in extra:
                        out += errors(rule, value[k], root, f"{path}.{k}")
        elif key == "propertyNames":
            if isinstance(value, dict):
                for k in value:
                    out += errors(rule, k, root, f"{path} key {k!r}")
        elif key == "items":
            if isinstance(value, list):
                start = len(schema.get("prefixItems", []))
                for i, item in enumerate(value[start:], start):
                    out += errors(rule, item, root, f"{path}[{i}]")
        elif key == "prefixItems":
            if isinstance(value, list):
                for i, (sub, item) in enumerate(zip(rule, value)):
                    out += errors(sub, item, root, f"{path}[{i}]")
        elif key in ("minItems", "maxItems"):
            if isinstance(value, list) and (len(value) < rule if key == "minItems" else len(value) > rule):
                out.append(f"{path}: {len(value)} items breaks {key}={rule}")
        elif key in ("anyOf", "oneOf"):
            passing = sum(not errors(sub, value, root, path) for sub in rule)
            if passing == 0 or (key == "oneOf" and passing > 1):
                out.append(f"{path}: {passing} of the {key} alternatives match")
        elif key == "const":
            if value != rule:
                out.append(f"{path}: {value!r} is not {rule!r}")
        elif key == "enum":
            if value not in rule:
                out.append(f"{path}: {value!r} is not one of {rule}")
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is(value, "number") and not _bound(key, value, rule):
                out.append(f"{path}: {value} breaks {key}={rule}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                out.append(f"{path}: {value!r} does not match {rule!r}")
        else:
            raise NotImplementedError(f"schema keyword {key!r} at {path} is not understood by this check")
    return out


def _is(value: Any, name: str) -> bool:
    if name in ("number", "integer"):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return numeric and (name == "number" or float(value).is_integer())
    return isinstance(value, TYPES[name])


def _bound(key: str, value: float, rule: float) -> bool:
    return {"minimum": value >= rule, "maximum": value <= rule,
            "exclusiveMinimum": value > rule, "exclusiveMaximum": value < rule}[key]


def _resolve(root: dict, ref: str) -> dict:
    if not ref.startswith("#/"):
        raise NotImplementedError(f"only local references are understood, not {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node
