import os

# No Hugging Face Hub here or in CI: a failed look-up costs 50 seconds.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The tiny demo model, built once for the whole session (defined here, not
# imported into each module, so every module shares the one build).
# --- finetune and torch test fixtures (helper h3) ---------------------------------------------------
# A tiny BPE chat tokenizer shared by the finetune test modules; their plain helpers (CONVS,
# TRIPLETS, make_model, write) are imported from tests/_finetune.py.
import pytest  # noqa: E402
import torch  # noqa: E402
from _finetune import tokenizer  # noqa: E402,F401
from _tiny import tiny_model, tiny_model_dir  # noqa: E402,F401


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Tiny matmuls gain nothing from threads, and on a busy 2-core box OpenMP spin-waiting
    made each step ~100x slower (12.8 s vs 0.1 s for 20 training steps)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
# --- end of finetune and torch test fixtures --------------------------------------------------------

# --- report tests (helper h2) ------------------------------------------------------------------
# Hand-built records live in _report_records.py (imported by the report tests like _tiny);
# fixtures shared by those tests are defined here.


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


# A real `assure run` killed with SIGKILL mid fine-tune (module scope: each module using it gets its own run).
from _killed import killed  # noqa: E402,F401
