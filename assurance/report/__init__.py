"""PDF assurance packs rendered from a run's evidence records (never from a model)."""

from assurance.report.comparison import comparison_records
from assurance.report.render import render_pack
from assurance.report.view import RunView, build_view

__all__ = ["RunView", "build_view", "comparison_records", "render_pack"]
