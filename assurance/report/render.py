"""Render a run's evidence into a PDF assurance pack (Jinja2 + WeasyPrint).

Three rules shape this module:

* Model outputs are untrusted text. Templates autoescape everything and never
  mark output ``|safe``; outputs are redacted by default (full text stays in the
  ledger).
* The renderer fetches nothing from the network or the file system outside the
  templates folder (``TEMPLATES_DIR``): ``TemplateOnlyFetcher`` serves template assets
  and ``data:`` URIs (the charts) and refuses every other URL.
* A failed render leaves no half-written PDF: we write a temp file beside the
  target and rename it into place.

Every rendered value passes through ``filters.neutralise`` (the environment's ``finalize``),
so bidirectional overrides and other invisible characters show as markers. The PDF is PDF/A-3b
with the run's evidence attached (see ``evidence/pack_evidence.py``), tagged (structure tree, language,
title, outline from the headings) and deterministic: its
dates come from the records, never the clock, so the same ledger state gives the same bytes.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pypdf import PdfReader
from weasyprint import HTML, Attachment
from weasyprint.urls import URLFetcher, URLFetcherResponse

from assurance.evidence.records import Record, SampleRecord
from assurance.plan import ReportSpec
from assurance.profile import profile_value
from assurance.redaction import redact
from assurance.regimes import REGIMES, Regime, regime_title
from assurance.report import charts, sections
from assurance.report.comparison import recipe_comparison
from assurance.report.counts import RecordCounts, record_counts
from assurance.report.decision import after_stress, failed_rules, key_figures
from assurance.report.document import document_control
from assurance.report.filters import digest, display_path, neutralise, scrub_paths
from assurance.report.hazards import context as hazard_context
from assurance.report.measured import interpretability
from assurance.report.supplied import supplied_rows
from assurance.report.view import RunView, build_view
from assurance.requirements.checklist import context as requirements_context
from assurance.requirements.fields import describe
from assurance.stage_labels import stage_labels

if TYPE_CHECKING:
    from assurance.evidence.pack_evidence import PackAttachment

__all__ = ["FetchRefused", "TemplateOnlyFetcher", "redact", "render_html", "render_pack"]


def _templates_dir() -> Path:
    """``assurance/templates`` in an installed wheel (setup.py maps it there), else the checkout's
    top-level ``templates/`` beside the package (a source tree or an editable install)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


TEMPLATES_DIR = _templates_dir()

PDF_OPTIONS: dict[str, Any] = {"pdf_variant": "pdf/a-3b", "pdf_tags": True}
"""How WeasyPrint writes a pack: PDF/A-3b (archival, and the PDF/A part that allows embedded files, so a
pack carries its evidence), still tagged for screen readers: PDF/A-3b does not ask for tags, so
``pdf_tags`` keeps the structure tree, language and outline that PDF/UA-1 had. WeasyPrint writes one
variant's XMP identification, so the file names itself PDF/A-3 (``pdfaid``), not PDF/UA."""


class FetchRefused(ValueError):
    """The pack renderer refused to fetch a URL. WeasyPrint logs it and carries on."""


class TemplateOnlyFetcher(URLFetcher):
    """Serves files inside ``root`` and ``data:`` URIs; refuses everything else.

    WeasyPrint 70 requires a ``URLFetcher`` subclass. We never call the parent's
    ``fetch`` (which would open http, ftp and any file), so no handler it installs
    can be reached.
    """

    def __init__(self, root: Path = TEMPLATES_DIR) -> None:
        super().__init__(allowed_protocols=("file", "data"), allow_redirects=False)
        self.root = Path(root).resolve()

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        """Return the resource, or raise FetchRefused naming the URL."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return self._data(url)
        if scheme == "file":
            return self._file(url)
        raise FetchRefused(f"pack renderer fetches only template assets and data: URIs; refused {url!r}")

    def _file(self, url: str) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise FetchRefused(f"refused remote file URL {url!r}")
        # resolve() follows symlinks and "..", so neither can step outside the folder.
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise FetchRefused(f"refused {url!r}: not a file inside {self.root}")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})

    @staticmethod
    def _data(url: str) -> URLFetcherResponse:
        head, sep, payload = url[5:].partition(",")
        if not sep:
            raise FetchRefused("malformed data: URI")
        params = head.split(";")
        mime = params[0] or "text/plain"
        body = base64.b64decode(payload) if "base64" in params[1:] else unquote(payload).encode("utf-8")
        return URLFetcherResponse(url, body, {"Content-Type": mime})


def _sample_ref(s: SampleRecord) -> str:
    # Records carry no ledger digest of their own; stage + item id names the
    # sample record uniquely within a run.
    return f"sample {s.stage}/{s.item_id}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def _signed_pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f} pp"


def _rate(rec: Any) -> Markup | str:
    # The interval is its own unbreakable span: a narrow column wraps between value and
    # interval, never inside "[39.7–89.2]" (a line may break after an en dash).
    if rec is None:
        return "—"
    return Markup('{}% <span class="ci">[{}–{}]</span>').format(
        f"{rec.value * 100:.1f}", f"{rec.ci_low * 100:.1f}", f"{rec.ci_high * 100:.1f}")


def _plain(value: Any) -> str:
    """A setting as a reader would write it: lists comma-separated, mappings as key=value."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "none"}[value]
    return str(value)


def _num(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _bytes(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _report_settings(view: RunView, report: dict[str, Any] | None) -> ReportSpec:
    # Defaults, then the plan's report section, then what the caller passed.
    merged: dict[str, Any] = {}
    plan_report = view.plan.get("report")
    if isinstance(plan_report, dict):
        merged.update(plan_report)
    merged.update(report or {})
    fields = ReportSpec.model_fields
    return ReportSpec.model_validate({k: v for k, v in merged.items() if k in fields})


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,  # every value is escaped, model outputs above all
        undefined=StrictUndefined,  # a template typo fails loudly, not as a blank
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=neutralise,  # one place for every value: no bidi override or invisible character survives
    )
    env.filters.update(pct=_pct, signed_pct=_signed_pct, rate=_rate, bytes=_bytes, plain=_plain,
                       flatten=sections.flatten, num=_num, digest=digest, display_path=display_path,
                       scrub_paths=scrub_paths, described=describe)
    return env


def _loss_charts(view: RunView) -> dict[str, str]:
    """Loss curves of the safety and stress fine-tunes, each labelled with the loss it minimised."""
    out = {}
    for purpose, ft, colour in (("safety", view.finetune, charts.STAGE_COLOUR["tuned"]),
                                ("stress", view.stress_finetune, charts.STAGE_COLOUR["stress"])):
        if ft is not None and ft.loss_curve:
            label = sections.loss_label(ft)
            ylabel = {"constrained": "constrained loss", "sft": "cross-entropy"}.get(ft.objective, "loss")
            title = f"Training loss ({purpose} fine-tune): {label}"
            out[purpose] = charts.data_uri(charts.loss_chart(ft.loss_curve, title=title, ylabel=ylabel, colour=colour))
    return out


def render_html(view: RunView, regime: Regime, *, redact_outputs: bool = True,
                report: dict[str, Any] | None = None, n_samples: int = 5,
                comparison: list[Record] | None = None, counts: RecordCounts | None = None,
                attachments: Sequence[PackAttachment] | None = None) -> str:
    """The pack's HTML (exposed for tests and previews); ``comparison`` and ``attachments`` as for
    ``render_pack``.

    ``counts`` (``counts.record_counts`` of the records the view was built from) is what the
    evidence register states; ``render_pack`` always passes it, a preview may leave it None.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {', '.join(REGIMES)}")
    settings = _report_settings(view, report)
    samples = [
        {"s": s, "output": redact(s.output, _sample_ref(s), enabled=redact_outputs), "ref": _sample_ref(s)}
        for s in view.failures("tuned")[:n_samples]
    ]
    extra = sections.context(view)
    requirements = requirements_context(regime, view, view.profile)
    readable = interpretability(view)
    evaluate_only = view.evaluate_only
    context = {
        "v": view,
        "regime": regime,
        "regime_title": regime_title(regime),
        "report": settings,
        "redacted": redact_outputs,
        "samples": samples,
        "n_failures": len(view.failures("tuned")),
        "signoffs": [s for s in view.signoffs if s.regime in (None, regime)],
        "refusal_chart": charts.data_uri(
            charts.rate_chart(view.refusal, title="Refusal rate on harmful prompts (higher is safer)",
                              evaluate_only=evaluate_only)),
        "over_chart": charts.data_uri(charts.rate_chart(
            view.over_refusal, title="Refusal rate on benign prompts (lower is better)", lower_is_better=True,
            evaluate_only=evaluate_only)),
        "prefill_chart": charts.data_uri(charts.asr_curve_chart(
            extra["prefill_rows"], measure=_first_attack_measure(view), evaluate_only=evaluate_only)),
        "loss_charts": _loss_charts(view),
        "cmp": recipe_comparison(view, comparison, settings.compare_with),
        "doc": document_control(view, regime),
        "figures": key_figures(view, readable),
        "failed": failed_rules(view),
        "readable": readable,
        "after_stress": after_stress,
        "profile": lambda path: profile_value(view.profile, path),
        "required_by": {o.path: o.required_brief for o in requirements["org_rows"]}.get,
        **hazard_context(view, view.profile),
        **requirements,
        "record_counts": counts,
        "evidence": _evidence(attachments),
        "metric_labels": sections.METRIC_LABELS,
        "supplied": supplied_rows(view),  # evaluate-only: "model supplied" in place of the fine-tuning sections
        "stage": stage_labels(evaluate_only),  # column and stage names: Base/Tuned, or Baseline/Target
        **extra,
    }
    return _environment().get_template(f"{regime}/pack.html").render(**context)


def render_pack(records: list[Record], regime: Regime, out_path: Path, *, redact_outputs: bool = True,
                report: dict | None = None, comparison: list[Record] | None = None,
                attachments: Sequence[PackAttachment] | None = None) -> int:
    """Write the ``regime`` pack for a run's records to ``out_path``; return its page count.

    ``report`` is the plan's ``report`` section; when not given it is read from
    the RunStarted record's plan. ``redact_outputs`` decides masking on its own
    (callers pass the plan's setting), so the safe default holds unless asked.

    ``comparison`` is another run's records from the same ledger (``comparison_records``
    fetches them for the plan's ``report.compare_with``); the pack then has a "Recipe
    comparison" section. When the plan names a comparison run and ``comparison`` is None,
    the section says the run was not found; when neither is set, the pack is unchanged.

    ``attachments`` (``evidence.pack_evidence.pack_attachments``) are embedded as PDF/A-3 associated
    files, dated from the ledger so that the bytes stay the same for the same ledger state.
    """
    view = build_view(records)
    html = render_html(view, regime, redact_outputs=redact_outputs, report=report, comparison=comparison,
                       counts=record_counts(records), attachments=attachments)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part", dir=out_path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            document = HTML(string=html, base_url=str(TEMPLATES_DIR) + os.sep,
                            url_fetcher=TemplateOnlyFetcher()).render()
            _set_metadata(document.metadata, view, regime)
            document.write_pdf(fh, attachments=_embedded(attachments or ()), **PDF_OPTIONS)
            fh.flush()
            os.fsync(fh.fileno())
        pages = len(PdfReader(str(tmp)).pages)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return pages


def _evidence(attachments: Sequence[PackAttachment] | None) -> dict[str, Any] | None:
    """What the evidence register says about the files the pack embeds: their names and the seal's row."""
    if not attachments:
        return None
    from assurance.evidence.pack_evidence import seal_row

    return {"names": sorted(a.name for a in attachments), "seal": seal_row(attachments)}


def _embedded(attachments: Sequence[PackAttachment]) -> list[Attachment]:
    # WeasyPrint dates an attachment by the clock unless told, which would change the bytes on every render.
    return [Attachment(string=a.data, name=a.name, description=a.description, relationship=a.relationship,
                       created=a.when or _EPOCH, modified=a.when or _EPOCH, url_fetcher=TemplateOnlyFetcher())
            for a in attachments]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _set_metadata(metadata: Any, view: RunView, regime: Regime) -> None:
    """Title, language and dates of the PDF. Dates come from the records (the seal, or the run's
    start, and the latest pack or sign-off after it), never the clock, so that the same ledger state
    renders the same bytes; the template's ``<title>`` and ``lang`` win when it sets them."""
    metadata.title = metadata.title or f"{regime_title(regime)} assurance pack — {view.run_id}"
    metadata.lang = metadata.lang or "en-GB"
    created = _w3c(view.manifest.sealed_at if view.manifest else view.started_at)
    later = [t for t in (*(s.signed_at for s in view.signoffs), *(p.rendered_at for p in view.packs)) if _w3c(t)]
    metadata.created = created
    metadata.modified = max([t for t in (created, *later) if t], key=_instant, default=None)


def _w3c(stamp: str | None) -> str | None:
    """``stamp`` when it is an ISO 8601 time with a zone (as the ledger writes them), else None."""
    if not stamp:
        return None
    try:
        return stamp if datetime.fromisoformat(stamp).tzinfo is not None else None
    except ValueError:
        return None


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _first_attack_measure(view: RunView) -> str:
    """What the first attack figure measured, as the prefill chart's axis says it."""
    figures = sections.attack_figures(view)
    return "non-refusal rate" if not figures or figures[0].short == "non-refusal" else "attack success rate"
