"""A run's samples as Inspect eval logs (the UK AI Security Institute's ``inspect_ai`` log format, version 2).

An Inspect log describes one model on one task, and a run evaluates up to three models (``base``,
``tuned``, ``stress``), so each stage gets its own log: ``<run_id>_<stage>.json``. The battery is the
task (its id and version, digest in the metadata). A sample's id is ``suite/item[/variant][/seed-N]``;
its ``target`` is what a safe model should do (or the expected answer); each judge is one score whose
value holds the verdicts (``refused``, and ``attack_succeeded``, ``harmful``, ``signposted``, ``correct``
where given) and whose explanation is a secondary judge's own label; the metadata names the ledger record
and the prompt's digest. With outputs redacted the prompt is withheld too (the input says so, with its
digest). The overall greedy metrics of the stage are the log's results. Written as plain JSON, without
importing ``inspect_ai``; tests/test_export.py reads it back with ``inspect_ai.log.read_eval_log``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .evidence.records import ArtifactRecord, BatteryRecord, ManifestRecord, MetricRecord, RunStarted
from .evidence.store import Store

LOG_VERSION = 2
"""The Inspect eval log format version written."""

STAGE_MODEL_ROLES = {"base": ("base_model",), "tuned": ("adapter", "tuned_model"),
                     "stress": ("stress_adapter", "stress_model")}
"""Artifact roles that name each stage's model, in order of preference."""

_KINDS = ("run_started", "battery", "artifact", "metric", "manifest")


def write_inspect_logs(store: Store, run_id: str, rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One Inspect eval log per stage with samples; returns the files written."""
    records = store.records(run_id, kinds=_KINDS)
    started = next(r for r in records if isinstance(r, RunStarted))
    battery = next((r for r in records if isinstance(r, BatteryRecord)), None)
    manifest = next((r for r in reversed(records) if isinstance(r, ManifestRecord)), None)
    artifacts = {r.role: r for r in records if isinstance(r, ArtifactRecord)}
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stage in dict.fromkeys(r["stage"] for r in rows):
        stage_rows = [r for r in rows if r["stage"] == stage]
        metrics = [r for r in records if isinstance(r, MetricRecord) and r.stage == stage
                   and r.category == "overall" and r.decoding == "greedy" and r.variant is None]
        log = {
            "version": LOG_VERSION, "status": "success" if manifest and manifest.complete else "started",
            "eval": _spec(run_id, stage, started, battery, artifacts, stage_rows),
            "plan": {"name": "plan",
                     "steps": [{"solver": "generate", "params": battery.generation if battery else {}}]},
            "results": _results(stage_rows, metrics),
            "stats": {"started_at": started.started_at, "completed_at": manifest.sealed_at if manifest else ""},
            "samples": [_sample(r, _model_name(stage)) for r in stage_rows],
        }
        path = folder / f"{run_id}_{stage}.json"
        path.write_text(json.dumps(log, ensure_ascii=False, indent=1), encoding="utf-8")
        written.append(path)
    return written


def _model_name(stage: str) -> str:
    return f"assurance/{stage}"


def _spec(run_id: str, stage: str, started: RunStarted, battery: BatteryRecord | None,
          artifacts: dict[str, ArtifactRecord], rows: list[dict[str, Any]]) -> dict[str, Any]:
    model = next((artifacts[role] for role in STAGE_MODEL_ROLES.get(stage, ()) if role in artifacts), None)
    ids = [_sample_id(r) for r in rows]
    return {
        "eval_id": f"{run_id}-{stage}", "run_id": run_id, "created": started.started_at,
        "task": f"assurance/{battery.battery_id if battery else 'battery'}",
        "task_version": battery.version if battery else 0,
        "dataset": {"name": battery.battery_id if battery else None, "samples": len(ids), "sample_ids": ids},
        "model": _model_name(stage),
        "model_args": {"path": model.path, "digest": model.digest} if model else {},
        "config": {},
        "packages": {"assurance": started.tool_version},
        "metadata": {
            "assurance_run_id": run_id, "stage": stage, "plan_name": started.plan.get("name"),
            "battery_digest": battery.digest if battery else None,
            "suite_digests": battery.suite_digests if battery else {},
        },
    }


def _results(rows: list[dict[str, Any]], metrics: list[MetricRecord]) -> dict[str, Any]:
    scores = [{
        "name": f"{m.suite}/{m.name}", "scorer": rows[0]["primary_judge"] if rows else "",
        "scored_samples": m.n,
        "metrics": {m.name: {"name": m.name, "value": m.value, "params": {"ci_low": m.ci_low, "ci_high": m.ci_high}}},
    } for m in metrics]
    return {"total_samples": len(rows), "completed_samples": len(rows), "scores": scores}


def _sample_id(row: dict[str, Any]) -> str:
    parts = [row["suite"], row["item_id"]]
    if row["variant"]:
        parts.append(row["variant"])
    if row["seed"] is not None:
        parts.append(f"seed-{row['seed']}")
    return "/".join(parts)


def _sample(row: dict[str, Any], model: str) -> dict[str, Any]:
    prompt = row["prompt"] if row["prompt"] is not None else f"[prompt withheld; {row['prompt_digest']}]"
    output = row["output"]
    verdicts = {k: row[k] for k in ("refused", "attack_succeeded", "harmful", "signposted", "correct")
                if row[k] is not None}
    scores = {}
    for judge, got in row["judges"].items():
        primary = judge == row["primary_judge"]
        scores[judge] = {"value": verdicts if primary else {"refused": got["refused"]},
                         "explanation": got["label"], "metadata": {"role": "primary" if primary else "secondary"}}
    return {
        "id": _sample_id(row), "epoch": 1, "input": prompt, "target": row["answer"] or row["expected"],
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}],
        "output": {"model": model, "completion": output,
                   "choices": [{"message": {"role": "assistant", "content": output}, "stop_reason": "stop"}]},
        "scores": scores,
        "metadata": {k: row[k] for k in ("seq", "record_digest", "stage", "suite", "item_id", "category", "expected",
                                         "variant", "k", "seed", "prompt_digest", "prefill", "output_chars",
                                         "redacted", "signposts")},
    }
