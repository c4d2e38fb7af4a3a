"""Scoring a candidate: ψ (the ERM softmax of the source class) and ρ (IG mass inside the mask).

Consumes the ERM classifier, a source image x (class i), its candidate x' (made for class i', the
same size as x), and the mask M (255 = repainted, the same size); produces ``CandidateScore``:

- ψ = softmax(f(x'))[i], compared with Ψ_i (Eq. 3) when pruning; both softmax vectors are kept
  for the "softmax shift" view.
- ρ = Σ_k M_k · IG_k(x') (Eq. 4–5): integrated gradients of f's logit for i' along the straight
  path from the baseline x to the input x' (captum ``IntegratedGradients``), summed over channels
  and over the pixels inside the mask. The per-pixel map (channels summed) is kept for the heatmap
  view, with captum's convergence delta.

x, x' and M go through ``imaging.classifier_view`` — the one deterministic view the classifier has
of any image (the same as training's evaluation transform, so ψ of an unchanged image equals its
stored softmax) — so baseline, input and mask stay aligned whatever the images' sizes; the
published code augmented x and x' independently and never cropped the mask. ρ is summed in that
view; the stored map is resized back to the source's size (bilinear, scaled so that its sum is
kept) for display next to the source.

Memory is bounded: integrated gradients runs ``internal_batch_size`` rows (images × path steps)
per forward and backward pass, by default as many as ``ig_rows`` allows at the classifier's input
size (64 rows at 64 px, 16 at 224 px).

Device and precision: the images go to the classifier's device. Everything is float32 by default, on
every device. With ``half`` (asked for: ``ddb score --ig-dtype float16``, CUDA only), the classifier's
forward runs under ``torch.autocast(float16)``: convolutions and matrix
products in float16, while batch norm, softmax and reductions stay float32 (autocast's own policy).
Everything integrated gradients adds up stays float32: the baseline, the input and every point of
the path are float32 leaves, so their gradients, the Riemann sum over the 50 steps, ρ and ψ are all
float32. On the CPU everything is float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..project.device import module_device
from ..project.errors import ConfigError
from ..data.imaging import classifier_view, normalize

IG_PIXEL_BUDGET = 16 * 224 * 224  # pixels per IG pass: 16 rows at 224 px (64 at 64 px, the cap), 3 at 512 px


def ig_rows(image_size: int, budget: int = IG_PIXEL_BUDGET) -> int:
    """Rows (images × steps) per integrated-gradients pass at this input size, so that a pass holds
    at most ``budget`` pixels (activations grow with the pixel count): at least 1, at most 64."""
    return int(max(1, min(64, budget // (image_size * image_size))))


@dataclass
class CandidateScore:
    psi: float  # softmax(f(x'))[i]
    rho: float  # sum_k M_k IG_k(x'), Eq. 4-5
    ig_delta: float  # captum's convergence delta (completeness error)
    probs_source: list[float]  # softmax(f(x))
    probs_generated: list[float]  # softmax(f(x'))
    ig_map: np.ndarray  # H x W float32 at the source's size, channels summed
    change: Optional[float] = None  # mean |x' - x| / 255 inside the mask: how much was repainted (0: nothing)


def views(images: Sequence[np.ndarray], size: int, masks: Optional[Sequence[np.ndarray]] = None):
    """Images (any sizes) → N x 3 x S x S normalised float; with masks also N x 1 x S x S in {0, 1}."""
    import torch

    if masks is None:
        v = [classifier_view(im, size) for im in images]
        return normalize(torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2))
    pairs = [classifier_view(im, size, m) for im, m in zip(images, masks)]
    x = normalize(torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2))
    return x, torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]


def _to_source_size(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An S x S attribution map resized (bilinear) to ``shape`` (h, w), scaled so its sum is kept."""
    from PIL import Image

    h, w = shape
    if a.shape == (h, w):
        return a.astype(np.float32)
    out = np.asarray(Image.fromarray(a.astype(np.float32)).resize((w, h), Image.BILINEAR), np.float32)
    return out * np.float32(a.size / out.size)


def score_candidates(model: Callable, sources: Sequence[np.ndarray], generated: Sequence[np.ndarray],
                     masks: Sequence[np.ndarray], source_labels: list[int], target_labels: list[int], image_size: int,
                     n_steps: int = 50, internal_batch_size: Optional[int] = None,
                     half: bool = False) -> list[CandidateScore]:
    """ψ, ρ and the IG map of each candidate. ``model`` is any callable returning logits; images are
    HWC uint8 of any sizes (each candidate the size of its source), masks HW uint8 (255 = repainted).
    ``half``: the classifier's forward under float16 autocast, on CUDA only (see the module's note)."""
    import torch
    from captum.attr import IntegratedGradients

    for k, (s, g, m) in enumerate(zip(sources, generated, masks)):
        if g.shape != s.shape or m.shape != s.shape[:2]:
            raise ConfigError(f"candidate {k}: source {s.shape[1]}x{s.shape[0]}, result {g.shape[1]}x{g.shape[0]} and "
                              f"mask {m.shape[1]}x{m.shape[0]} must have the same size")
    if n_steps < 1:
        raise ConfigError(f"n_steps must be >= 1, got {n_steps}")
    rows = internal_batch_size or ig_rows(image_size)
    if rows < 1:
        raise ConfigError(f"internal_batch_size must be >= 1, got {internal_batch_size}")
    dev = module_device(model)
    x, m = views(sources, image_size, masks)  # N x 3 x S x S (baseline), N x 1 x S x S
    xp = views(generated, image_size)  # N x 3 x S x S (input)
    x, m, xp = x.to(dev), m.to(dev), xp.to(dev)
    forward = model
    if half and dev.type == "cuda":
        def forward(inputs):  # float16 inside the model only; logits back as float32
            with torch.autocast("cuda", dtype=torch.float16):
                return model(inputs).float()
    with torch.no_grad():
        p_src = forward(x).float().softmax(1).cpu()
        p_gen = forward(xp).float().softmax(1).cpu()
    ig = IntegratedGradients(forward)
    attributions, delta = ig.attribute(xp, baselines=x, target=torch.tensor(target_labels, device=dev), n_steps=n_steps,
                                       internal_batch_size=rows, return_convergence_delta=True)
    per_pixel = attributions.detach().float().sum(1)  # N x S x S, channels summed
    rho = (per_pixel * m[:, 0]).sum((1, 2)).cpu()  # Eq. 5: sum over pixels inside the mask
    per_pixel, delta = per_pixel.cpu(), delta.float().cpu()
    return [CandidateScore(psi=float(p_gen[k, source_labels[k]]), rho=float(rho[k]), ig_delta=float(delta[k]),
                           probs_source=p_src[k].tolist(), probs_generated=p_gen[k].tolist(),
                           ig_map=_to_source_size(per_pixel[k].numpy(), sources[k].shape[:2]),
                           change=mask_change(sources[k], generated[k], masks[k]))
            for k in range(len(source_labels))]


def mask_change(source: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> Optional[float]:
    """Mean absolute pixel change inside the mask, in [0, 1] (None for an empty mask): a generation that
    repainted nothing, or almost nothing, shows as a value near 0."""
    inside = mask > 0
    if not inside.any():
        return None
    diff = np.abs(generated.astype(np.int16) - source.astype(np.int16)).mean(axis=2)
    return round(float(diff[inside].mean()) / 255.0, 5)
