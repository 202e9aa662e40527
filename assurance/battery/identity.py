"""What every judge and scorer shares: an identity that pins it in the evidence.

A score is only evidence when it can be traced to exactly what produced it,
so every judge (keyword, model, HTTP, signposting) and every capability
scorer has an ``id``, a ``version`` and a ``digest``: ``sha256:<hex>`` over
the canonical JSON of its ``config()`` (``evidence.hashing.json_digest``).
The digest covers the configuration only, never the module that holds the
code, so moving a judge between modules keeps the digests already stored.
"""

from __future__ import annotations

from typing import Any

from ..evidence.hashing import json_digest


class Identified:
    """Subclasses set ``id`` and ``version`` (attributes or properties) and implement ``config()``."""

    id: str
    version: str

    def config(self) -> dict[str, Any]:
        """Everything that shapes the verdicts or scores; hashed into ``digest``. No secrets."""
        raise NotImplementedError

    @property
    def digest(self) -> str:
        return json_digest(self.config())

    @property
    def key(self) -> str:
        """The short name written beside each verdict, ``<id>@<version>``."""
        return f"{self.id}@{self.version}"

    def entry(self, suite: str) -> dict[str, Any]:
        """A BatteryRecord ``judges`` entry naming this judge or scorer for ``suite``."""
        return {"id": self.id, "version": self.version, "digest": self.digest, "suite": suite}
