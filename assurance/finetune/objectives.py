"""Per-token training objectives.

``sft``: cross-entropy, -log p_theta(y_t).

``constrained`` (Qi et al., ICLR 2025, eq. 3): for answer position t,

    loss_t = -(2 / b_t) * log sigmoid(b_t * (log p_theta(y_t) - log p_ref(y_t)))

Its gradient is cross-entropy's scaled by w_t = 2 * sigmoid(b_t * (log p_ref - log p_theta)):
w_t = 1 where the model still agrees with the reference, and it falls towards 0
as the model drifts above the reference, so a large b_t pins token t close to the
aligned model. As b_t -> 0 the loss tends to cross-entropy (plus a constant), which
is why later tokens, where b_t = 0.1, train almost freely. The early positions are
where shallow safety alignment lives, hence b_1 = 0.5, b_2..b_5 = 2.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from assurance.finetune.batches import IGNORE

from ..models.sharded import is_sharded

LITERATURE = {
    "deep-alignment": "Qi, X., Panda, A., Lyu, K., Ma, X., Roy, S., Beirami, A., Mittal, P., Henderson, P. "
                      "Safety Alignment Should Be Made More Than Just a Few Tokens Deep. ICLR 2025 "
                      "(section 3: data augmentation with safety recovery examples).",
    "constrained": "Qi, X., Panda, A., Lyu, K., Ma, X., Roy, S., Beirami, A., Mittal, P., Henderson, P. "
                   "Safety Alignment Should Be Made More Than Just a Few Tokens Deep. ICLR 2025 "
                   "(section 4: token-wise constrained optimization objective).",
    "stress": "Qi, X., Zeng, Y., Xie, T., Chen, P.-Y., Jia, R., Mittal, P., Henderson, P. Fine-tuning Aligned "
              "Language Models Compromises Safety, Even When Users Do Not Intend To! ICLR 2024.",
}


def position_betas(n_positions: int, beta_first: float, beta_early: float, early_tokens: int,
                   beta_rest: float) -> list[float]:
    """b_t for t = 1..n_positions (t counted from the first token of the assistant turn)."""
    return [beta_first if t == 1 else beta_early if t <= early_tokens else beta_rest
            for t in range(1, n_positions + 1)]


def answer_betas(labels: torch.Tensor, start: torch.Tensor, c) -> torch.Tensor:
    """b_t for each supervised token of a batch; t = 1 at the first token of the assistant turn."""
    t = torch.arange(1, labels.size(1), device=labels.device).unsqueeze(0) - start.unsqueeze(1) + 1
    t = t[labels[:, 1:] != IGNORE].float()
    return torch.where(t <= 1, c.beta_first, torch.where(t <= c.early_tokens, c.beta_early, c.beta_rest))


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per row of ``logits`` (N, V), in float32."""
    return -F.cross_entropy(logits.float(), targets, reduction="none")


def constrained_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Per-token constrained loss; all three tensors have one entry per supervised token."""
    return -(2.0 / beta) * F.logsigmoid(beta * (logp - ref_logp))


# Causal LMs whose forward rescales logits after the head; for these we take the plain (slower) path.
_LOGIT_POSTPROCESS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


class TokenLogProbs(torch.nn.Module):
    """log p(label) at every supervised position, as one flat vector in row-major order.

    The LM head runs only on supervised positions: on a small model the vocabulary
    projection of every prompt and pad token is most of the forward cost. This is
    the module DDP wraps, so gradient sync sees a normal forward.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # Weights in shards (models.sharded) are gathered by the causal LM's own forward: the fast path,
        # which calls its decoder and head directly, would skip that.
        self.fast = not any(getattr(base.config, a, None) for a in _LOGIT_POSTPROCESS) and not is_sharded(base)
        self.keep = "logits_to_keep" in inspect.signature(base.forward).parameters
        self._parts = (base.get_decoder(), base.get_output_embeddings())  # a tuple: not re-registered

    def forward(self, input_ids, attention_mask, labels):
        sel = labels[:, 1:] != IGNORE
        if self.fast:
            backbone, head = self._parts
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            logits = head(hidden[:, :-1][sel])
        elif self.keep:  # the head only at positions some row is supervised at
            cols = sel.any(0).nonzero().squeeze(1)
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                                logits_to_keep=cols).logits[sel[:, cols]]
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1][sel]
        return token_logprobs(logits, labels[:, 1:][sel])
