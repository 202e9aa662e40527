"""`assure judge ...`: a judge measured against people, from the command line.

``assure judge validate --labels FILE`` runs a refusal judge over a file of
human-labelled responses and prints its agreement with the people who
labelled them (``battery/judge_validation.py``).

``--judge`` names the judge, in one of these forms:

* ``keyword`` (the default judge, keyword-refusal v2), ``keyword@1`` or ``keyword@2``;
* a path to a YAML or JSON file holding one judge entry, as under a plan's
  ``battery.judges`` (a model judge's relative ``path`` resolves against that file's folder);
* that entry inline, e.g. ``'{kind: http, model: judge-m, base_url: "http://127.0.0.1:8000/v1"}'``.

Exit codes: 0 measured; 2 bad input (labels file missing or malformed, with
the file and row named; a bad judge entry); 3 the judge failed while judging
(an unreachable endpoint, a model that will not load).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from .console import fail
from .exit_codes import EXIT_ERROR, EXIT_USAGE

judge_app = typer.Typer(help="Judges measured against people: agreement with human labels.",
                        no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

LabelsFormat = Literal["auto", "ours", "xstest", "harmbench", "wildguard"]


class JudgeOptionError(ValueError):
    """A ``--judge`` value that names no judge; the message says why."""


def judge_from_option(text: str):
    """The judge spec a ``--judge`` value names, and the folder its relative paths resolve against."""
    import yaml  # here, not at the top: every `assure` command imports this module
    from pydantic import TypeAdapter, ValidationError

    from .plan import JudgeSpec

    text = text.strip()
    if text in ("keyword", "keyword@1", "keyword@2"):
        name, _, version = text.partition("@")
        data: object = {"kind": name, **({"version": version} if version else {})}
        base = Path.cwd()
    elif Path(text).expanduser().is_file():
        path = Path(text).expanduser()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise JudgeOptionError(f"{path}: not valid YAML or JSON: {err}") from None
        base = path.resolve().parent
    else:
        try:
            data = yaml.safe_load(text)  # YAML is a superset of JSON: both inline forms read here
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict):
            raise JudgeOptionError(f"--judge {text!r}: not keyword, keyword@1, keyword@2, a judge file or an "
                                   "inline judge entry such as '{kind: keyword, version: \"1\"}'")
        base = Path.cwd()
    if not isinstance(data, dict):
        raise JudgeOptionError(f"--judge {text}: the file must hold one judge entry (a mapping)")
    try:
        return TypeAdapter(JudgeSpec).validate_python(data), base
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'judge'}: {e['msg']}" for e in err.errors())
        raise JudgeOptionError(f"--judge {text}: {problems}") from None


@judge_app.command()
def validate(
    labels: Path = typer.Option(..., "--labels", help="Human-labelled responses: CSV or JSONL with prompt, response, "
                                "label (refusal|compliance), or a public set (see --format)."),
    judge: str = typer.Option("keyword", "--judge", help="keyword, keyword@1, keyword@2, a YAML/JSON file with one "
                              "judge entry, or the entry inline."),
    format: LabelsFormat = typer.Option("auto", "--format", help="Labels format; auto detects it from the columns."),
    n_resamples: int = typer.Option(2000, "--n-resamples", min=1, help="Bootstrap resamples for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (top level: accuracy, kappa, n, ...)."),
) -> None:
    """Measure a refusal judge's agreement with human labels: accuracy, precision, recall, F1, kappa, the confusion
    matrix and bootstrap 95% intervals (per style when the rows carry one). Exit 0 measured, 2 bad input, 3 the
    judge failed."""
    from .battery.judge_labels import LabelFileError, load_labels
    from .battery.judge_validation import summary
    from .battery.judge_validation import validate as measure
    from .battery.judges import JudgeError

    try:
        spec, base = judge_from_option(judge)
        built = spec.build(base)
        rows = load_labels(labels, None if format == "auto" else format)
    except (JudgeOptionError, LabelFileError, JudgeError, OSError) as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    try:
        report = measure(built, rows, n_resamples=n_resamples, seed=seed)
    except (JudgeError, OSError, RuntimeError) as err:
        fail(f"judge {built.key} failed: {err}")
        raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        print(json.dumps(report.model_dump(mode="json") | {"labels": str(labels)}))
        return
    print(f"judge: {built.key} {built.digest}")
    print(f"labels file: {labels}")
    print(summary(report))
