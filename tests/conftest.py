import os

# No Hugging Face Hub here or in CI: a failed look-up costs 50 seconds.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The tiny demo model, built once for the whole session (defined here, not
# imported into each module, so every module shares the one build).
from _tiny import tiny_model, tiny_model_dir  # noqa: E402,F401


# --- report tests (helper h2) ------------------------------------------------------------------
# Hand-built records live in _report_records.py (imported by the report tests like _tiny);
# fixtures shared by those tests are defined here.
import pytest  # noqa: E402


@pytest.fixture
def recording_fetcher(monkeypatch):
    """Swap in a pack fetcher that records every URL WeasyPrint asks for."""
    from assurance.report import render as render_mod

    asked: list[str] = []

    class Recording(render_mod.TemplateOnlyFetcher):
        def fetch(self, url, headers=None):
            asked.append(url)
            return super().fetch(url, headers)

    monkeypatch.setattr(render_mod, "TemplateOnlyFetcher", Recording)
    return asked
# --- end of report tests (helper h2) -----------------------------------------------------------
