"""Reading a YAML file strictly: safe tags only, one document, and no duplicate keys anywhere.

Plain YAML keeps the last of two equal keys silently, so a plan or profile with a
key given twice would run on a value its author may not have meant. Shared by
plan files (``plan.load_plan``) and organisation profiles (``profile_file``).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .base import PlanError


def strict_yaml(text: str, source: str, error: type[PlanError] = PlanError) -> Any:
    """Parse one YAML document (safe tags only), refusing duplicate keys anywhere in it; None when it is empty.

    Every problem raises ``error`` with one line naming ``source`` (and the line, for a duplicate key both):
    control characters or binary bytes (refused by the YAML reader as the loader starts), and nesting too deep
    for Python's recursion limit (a few hundred levels; no real plan nests more than six)."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as err:  # the reader checks every character before parsing starts
        raise error(f"{source}: not a YAML text file: {' '.join(str(err).split())}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node, "", source, set(), error)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = " ".join(" ".join(str(part) for part in (err.context, err.problem) if part).split()) or "invalid"
        raise error(f"{source}: not valid YAML: {what}{where}") from None
    except yaml.YAMLError as err:
        raise error(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read (more levels than Python's recursion limit)") from None
    finally:
        loader.dispose()


def _refuse_duplicates(node: Node, path: str, source: str, seen: set[int], error: type[PlanError]) -> None:
    if id(node) in seen:  # an alias to a node already walked
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else str(key.start_mark)
            dotted = f"{path}.{name}" if path else name
            line = key.start_mark.line + 1
            if (key.tag, name) in lines:
                raise error(f"{source}: {dotted}: duplicate key (lines {lines[(key.tag, name)]} and {line}); "
                            "YAML would keep only the last")
            lines[(key.tag, name)] = line
            _refuse_duplicates(value, dotted, source, seen, error)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, f"{path}.{i}", source, seen, error)
