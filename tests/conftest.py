import os

# No Hugging Face Hub here or in CI: a failed look-up costs 50 seconds.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The tiny demo model, built once for the whole session (defined here, not
# imported into each module, so every module shares the one build).
from _tiny import tiny_model, tiny_model_dir  # noqa: E402,F401
