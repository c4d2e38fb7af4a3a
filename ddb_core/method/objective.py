"""The retraining objective (Eq. 6–8), for any number of classes:

    L = L_train + Σ_c γ_c · L_gen,c

L_train is the mean cross-entropy of the batch's real training samples, L_gen,c the mean
cross-entropy of its generated samples of target class c (x' labelled c), weighted by γ_c. Each
term is a mean over its own subset of the batch, and an empty subset adds zero — the published code
took the mean of an empty subset, a NaN. The training loop (``training.train_classifier``) calls it
for every batch; with no generated sample it is the plain mean cross-entropy (ERM).
"""

from __future__ import annotations


def balanced_loss(logits, labels, terms, gammas):
    """Eq. 6–8 for any number of classes: mean CE of the real samples + Σ_c γ_c · mean CE of the
    generated samples of target class c, each mean over that subset of the batch.

    ``terms[k]`` is -1 for a real training sample and c for a generated sample of term c. An empty
    subset contributes zero (never NaN). With no generated samples this is the plain mean CE.
    """
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, labels, reduction="none")
    total = ce.new_zeros(())
    real = terms < 0
    if bool(real.any()):
        total = total + ce[real].mean()
    for c, gamma in enumerate(gammas):
        sub = terms == c
        if bool(sub.any()):
            total = total + float(gamma) * ce[sub].mean()
    return total
