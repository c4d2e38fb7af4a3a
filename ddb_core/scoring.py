"""Scoring a candidate: ψ (the ERM softmax of the source class) and ρ (IG mass inside the mask).

Consumes the ERM classifier, a source image x (class i), its candidate x' (made for class i'), and
the mask M (255 = repainted); produces ``CandidateScore``:

- ψ = softmax(f(x'))[i], compared with Ψ_i (Eq. 3) when pruning; both softmax vectors are kept
  for the "softmax shift" view.
- ρ = Σ_k M_k · IG_k(x') (Eq. 4–5): integrated gradients of f's logit for i' along the straight
  path from the baseline x to the input x' (captum ``IntegratedGradients``), summed over channels
  and over the pixels inside the mask. The per-pixel map (channels summed) is kept for the heatmap
  view, with captum's convergence delta.

One deterministic transform (resize to the classifier's input size, ImageNet normalisation) is
applied to x, x' and M alike, so baseline, input and mask stay aligned — the published code
augmented x and x' independently and never cropped the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np


@dataclass
class CandidateScore:
    psi: float  # softmax(f(x'))[i]
    rho: float  # sum_k M_k IG_k(x'), Eq. 4-5
    ig_delta: float  # captum's convergence delta (completeness error)
    probs_source: list[float]  # softmax(f(x))
    probs_generated: list[float]  # softmax(f(x'))
    ig_map: np.ndarray  # H x W float32 at the classifier's input size, channels summed


def to_input(images: np.ndarray, size: int):
    """N x H x W x 3 uint8 → N x 3 x size x size normalised float (the evaluation transform)."""
    import torch
    import torch.nn.functional as F

    from .imaging import normalize

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False).round().clamp(0, 255)
    return normalize(x)


def mask_to_input(masks: np.ndarray, size: int):
    """N x H x W uint8 (255 = repainted) → N x 1 x size x size float in {0, 1} (nearest)."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy((np.asarray(masks) == 255).astype(np.float32))[:, None]
    if m.shape[-1] != size:
        m = F.interpolate(m, size=(size, size), mode="nearest")
    return m


def score_candidates(model: Callable, sources: np.ndarray, generated: np.ndarray, masks: np.ndarray,
                     source_labels: list[int], target_labels: list[int], image_size: int, n_steps: int = 50,
                     internal_batch_size: Optional[int] = 16) -> list[CandidateScore]:
    """ψ, ρ and the IG map of each candidate. ``model`` is any callable returning logits."""
    import torch
    from captum.attr import IntegratedGradients

    x = to_input(sources, image_size)  # N x 3 x S x S, baseline
    xp = to_input(generated, image_size)  # N x 3 x S x S, input
    m = mask_to_input(masks, image_size)  # N x 1 x S x S
    with torch.no_grad():
        p_src = model(x).float().softmax(1)
        p_gen = model(xp).float().softmax(1)
    ig = IntegratedGradients(model)
    attributions, delta = ig.attribute(xp, baselines=x, target=torch.tensor(target_labels), n_steps=n_steps,
                                       internal_batch_size=internal_batch_size, return_convergence_delta=True)
    per_pixel = attributions.detach().sum(1)  # N x S x S, channels summed
    rho = (per_pixel * m[:, 0]).sum((1, 2))  # Eq. 5: sum over pixels inside the mask
    return [CandidateScore(psi=float(p_gen[k, source_labels[k]]), rho=float(rho[k]), ig_delta=float(delta[k]),
                           probs_source=p_src[k].tolist(), probs_generated=p_gen[k].tolist(),
                           ig_map=per_pixel[k].numpy().astype(np.float32))
            for k in range(len(source_labels))]
