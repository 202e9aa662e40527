"""Requirement maps (as data), the evidence kinds they name, and the checklists and crosswalks built from them.

``checklist.context(regime, view, profile)`` gives a pack's templates ``org_rows``, ``checklist``,
``crosswalks`` and ``gaps``; the maps are YAML files under ``data/`` (see ``maps.py``).
"""
