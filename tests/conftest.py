import os

# No Hugging Face Hub here or in CI: a failed look-up costs 50 seconds.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The tiny demo model, built once for the whole session (defined here, not
# imported into each module, so every module shares the one build).
from _tiny import tiny_model, tiny_model_dir  # noqa: E402,F401

# --- finetune test fixtures (helper h3) -------------------------------------------------------------
# A tiny BPE chat tokenizer and a one-thread guard, shared by the finetune test modules; the plain
# helpers (CONVS, TRIPLETS, make_model, write) are imported from tests/_finetune.py.
from _finetune import one_thread, tokenizer  # noqa: E402,F401
# --- end of finetune test fixtures ------------------------------------------------------------------
