"""Template filters that keep untrusted text, digests and paths from breaking or leaking into a pack.

* ``neutralise`` is the Jinja ``finalize`` of the pack environment, so it runs on every
  rendered value, once, whatever the template: invisible format and control characters
  (bidirectional overrides above all, which can make a name read backwards or reorder a
  table row) are replaced by a visible marker such as ``⟨U+202E⟩``. The ledger keeps the
  original text; only its display changes.
* ``digest`` wraps a digest in a ``.digest`` span (``white-space: nowrap`` in pack.css), so
  a 64-hex digest is one unbroken string an auditor can copy from the PDF.
* ``display_path`` shows a file or folder name instead of an absolute machine path
  (temporary and home folders say nothing to a reader and leak the operator's layout);
  the full path stays in the ledger.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from markupsafe import Markup

__all__ = ["digest", "display_path", "neutralise", "scrub_paths"]

# Line and paragraph separators are line breaks to a reader; a bare CR would otherwise
# print as a marker on every line of text pasted from Windows.
_LINE_BREAKS = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n"})
_KEEP = frozenset("\n\t")


def _marker(ch: str) -> str:
    return f"⟨U+{ord(ch):04X}⟩"


def neutralise(value: Any) -> Any:
    """Replace every invisible format (Cf) or control (Cc) character but newline and tab by
    a visible marker; used as the environment's ``finalize``, so no template can forget it.

    Markup (a macro's output, the ``digest`` filter's span) is neutralised too: the
    characters replaced never belong to HTML syntax, so its tags are untouched.
    """
    if value is None or not isinstance(value, str):
        return value
    if value.isprintable():  # the common case: no Cc/Cf/Zl/Zp character at all
        return value
    text = str(value).replace("\r\n", "\n").translate(_LINE_BREAKS)
    out = "".join(_marker(ch) if ch not in _KEEP and unicodedata.category(ch) in ("Cf", "Cc") else ch
                  for ch in text)
    return Markup(out) if isinstance(value, Markup) else out


def digest(value: Any, empty: str = "not recorded") -> Markup:
    """A digest as one unbreakable monospace string (``<span class="digest">``); ``empty``
    when there is none. The value is escaped here, as autoescaping no longer applies to it."""
    if not value:
        return Markup('<span class="na">{}</span>').format(empty)
    return Markup('<span class="digest">{}</span>').format(str(value))


_HF_CACHE = re.compile(r"models--([^/\\]+)--([^/\\]+)")


def display_path(value: Any) -> str:
    """What a pack prints for a path: the file or folder name of an absolute path, a
    Hugging Face cache snapshot as ``org/model``, anything else (``builtin:`` names, hub ids,
    relative paths) as given. The full path is kept in the ledger, never here."""
    if value is None:
        return ""
    text = str(value)
    if not _is_absolute(text):
        return text
    hub = _HF_CACHE.search(text)
    if hub:
        return f"{hub.group(1)}/{hub.group(2)}"
    path = text[7:] if text.startswith("file://") else text
    flavour = PureWindowsPath if ("\\" in path or re.match(r"^[A-Za-z]:", path)) else PurePosixPath
    name = flavour(path.rstrip("/\\")).name
    return name or text


def _is_absolute(text: str) -> bool:
    return (text.startswith(("/", "~/", "~\\", "\\\\", "file://"))
            or re.match(r"^[A-Za-z]:[\\/]", text) is not None)


# An absolute path inside free text (an error message, say): starts at a word boundary with
# "/", "~/" or a drive letter and runs to the next space or quote. "http://x/y" is not one:
# the lookbehind refuses a slash right after a colon, slash or word character.
_PATH_IN_TEXT = re.compile(r"(?<![\w:/.~\\])(?:~?/|[A-Za-z]:\\)[^\s'\"<>`]*[/\\][^\s'\"<>`,;:)]*")


def scrub_paths(value: Any) -> str:
    """Free text with every absolute path in it shortened as ``display_path`` does, for
    messages (a failure's error) that quote where a file was."""
    if value is None:
        return ""
    return _PATH_IN_TEXT.sub(lambda m: display_path(m.group(0)), str(value))
