"""Read a rendered pack back as a reader's tools see it (poppler's pdftotext), for layout tests.

Reusable on any pack: ``assert_no_machine_paths`` on a whole pack's text, ``assert_digests_whole``
with ``record_digests(records)``, ``assert_words_inside`` for text that ran off a page.
"""

from __future__ import annotations

import html
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

MM = 72 / 25.4
"""PDF points per millimetre."""

# pack.css: @page margins (top, right, bottom, left) in mm.
PAGE_MARGINS_MM = (22.0, 17.0, 20.0, 17.0)

MACHINE_PATH_PREFIXES = ("/tmp/", "/home/", "/root/", "/var/", "/private/", "/Users/")
"""Folders whose absolute paths a pack must never print (the name is shown, the full path stays in the ledger)."""

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def pdftotext(path: Path, *args: str) -> str:
    """``pdftotext [args] PATH -`` as text (UTF-8)."""
    return subprocess.run(["pdftotext", *args, str(path), "-"], check=True, capture_output=True).stdout.decode("utf-8")


@dataclass(frozen=True)
class Word:
    """One word as ``pdftotext -bbox`` places it (points, origin top-left)."""

    page: int
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    page_width: float
    page_height: float


_PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)
_WORD = re.compile(r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">(.*?)</word>', re.S)


def words(path: Path) -> list[Word]:
    """Every word of the PDF with its box."""
    out = []
    for number, page in enumerate(_PAGE.finditer(pdftotext(path, "-bbox")), start=1):
        width, height = float(page.group(1)), float(page.group(2))
        for m in _WORD.finditer(page.group(3)):
            out.append(Word(number, html.unescape(m.group(5)), *(float(m.group(i)) for i in range(1, 5)),
                            width, height))
    return out


def lines_below(found: list[Word], y: float) -> list[str]:
    """The text of each line (words of one page at one height) that starts below ``y`` points."""
    rows: dict[tuple[int, int], list[Word]] = {}
    for w in found:
        if w.y0 > y:
            rows.setdefault((w.page, round(w.y0)), []).append(w)
    return [" ".join(w.text for w in sorted(ws, key=lambda w: w.x0)) for _, ws in sorted(rows.items())]


def assert_words_inside(path: Path, *, footer: str = r"Page \d+ of \d+$", tolerance: float = 1.0) -> list[Word]:
    """Every word lies inside its page and between the side margins; below the bottom margin
    there are only footer lines (matching ``footer``). Returns the words for further checks."""
    top, right, bottom, left = (m * MM for m in PAGE_MARGINS_MM)
    found = words(path)
    assert found, f"{path} has no text"
    for w in found:
        assert 0 <= w.y0 and w.y1 <= w.page_height + tolerance, f"off the page vertically: {w}"
        assert left - tolerance <= w.x0 and w.x1 <= w.page_width - right + tolerance, f"outside the side margins: {w}"
    limit = found[0].page_height - bottom + tolerance
    for line in lines_below(found, limit):
        assert re.search(footer, line), f"text ran into the footer: {line[:120]!r}"
    return found


def assert_no_machine_paths(text: str, *extra: str) -> None:
    """No absolute path under a temporary or home folder (nor any of ``extra``, e.g. the test's
    tmp_path) appears in ``text`` (a pack's pdftotext output, or its HTML)."""
    for needle in (*MACHINE_PATH_PREFIXES, *extra):
        assert needle not in text, f"machine path {needle!r} printed: ...{_around(text, needle)}..."


def record_digests(records: Iterable[BaseModel], *, fields: Iterable[str] | None = None) -> set[str]:
    """Every ``sha256:<64 hex>`` digest in the records' payloads (or only in ``fields`` of them)."""
    out: set[str] = set()
    for rec in records:
        data = rec.model_dump(mode="json")
        if fields is not None:
            data = {k: data.get(k) for k in fields}
        out.update(_DIGEST.findall(str(data)))
    return out


def assert_digests_whole(text: str, digests: Iterable[str]) -> None:
    """Each digest appears unbroken (one string on one line) in the extracted text."""
    missing = sorted(d for d in digests if d not in text)
    assert not missing, f"digests not found whole in the text: {missing}"


def _around(text: str, needle: str, width: int = 60) -> str:
    i = text.find(needle)
    return text[max(0, i - width): i + width]
