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

import torch
import torch.nn.functional as F

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


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per row of ``logits`` (N, V), in float32."""
    return -F.cross_entropy(logits.float(), targets, reduction="none")


def constrained_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Per-token constrained loss; all three tensors have one entry per supervised token."""
    return -(2.0 / beta) * F.logsigmoid(beta * (logp - ref_logp))
