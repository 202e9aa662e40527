"""What a run has checked and loaded before its first record: ``Prepared``.

A module of its own because both ``inputs`` (which builds it) and ``backends``
(which reads it) need the type, and ``inputs`` already imports ``backends``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .battery.judges import BaseJudge
from .battery.suites import Battery
from .distributed import Ranks
from .plan import Plan
from .profile_file import LoadedProfile


@dataclass(frozen=True)
class Prepared:
    """Everything checked and loaded before the first record is written; never changed after.

    What a run learns while it works (metrics, greedy samples, trained models) lives in the
    stage results (``stages.Evaluated``, ``stages.Models``), not here."""

    plan: Plan
    """The validated plan (a resumed run's is the one recorded when it started)."""
    model_path: Path
    """The base model's local folder."""
    safety: list
    """The safety fine-tune's chat examples."""
    utility: list | None
    """The utility chat examples mixed in, or None."""
    battery: Battery
    """The evaluation battery, built from the plan."""
    model: object
    """The base model, loaded."""
    tokenizer: object
    """The base model's tokenizer."""
    device: torch.device
    """The torch device the run uses."""
    dtype: torch.dtype
    """The torch dtype the run uses."""
    judges: list = field(default_factory=list)
    """The plan's refusal judges, built and checked; the first is the primary judge."""
    benign_judge: BaseJudge | None = None
    """Scores benign prompts when the primary judge measures harm (``wiring.over_refusal_judge``)."""
    harm_judge: BaseJudge | None = None
    """The plan's ``battery.harm_judge`` for the attack suites, built and checked; None without one."""
    extra: list = field(default_factory=list)
    """Public benchmark suites run beside the battery (``wiring.ExtraSuite``)."""
    backends: dict = field(default_factory=dict)
    """Evaluated stage -> the generation backend it uses (``backends.stage_backends``)."""
    judge_labels: list = field(default_factory=list)
    """The plan's ``battery.judge_validation`` labels files, loaded and checked (``judge_labels.LabelSet``)."""
    profile: LoadedProfile | None = None
    """The plan's ``report.profile``, read, validated and hashed; None without one (or on a resume, whose
    profile is already in the ledger)."""
    supplied: dict = field(default_factory=dict)
    """Evaluate-only runs: evaluated stage (``tuned``, and ``base`` with a baseline) -> the supplied model it
    evaluates (``targets.SuppliedModel``); empty for a fine-tune run. ``model`` is then the target, loaded
    (None for an endpoint)."""
    ranks: Ranks = field(default_factory=Ranks)
    """This process's place among the run's processes (one, unless launched by torchrun or accelerate)."""

    @property
    def shards(self) -> Ranks | None:
        """The ranks the weights are sharded across (``model.parallel: fsdp`` under a launcher), else None."""
        return self.ranks.for_weights(self.plan.model.parallel)
