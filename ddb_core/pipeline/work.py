"""The units of work of masking, generation and scoring, as every engine runs them: read one batch's inputs
from their files and run the model on them. The local engine calls these in its own process, the Ray
engine (``engines``) in its actors, so both make the same pixels and the same scores from the same
inputs. An item names its files by absolute path; nothing here writes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..project.errors import ProjectError
from ..data.imaging import load_mask, load_rgb


def mask_batch(masker, items: Sequence[dict]) -> list:
    """One ``MaskResult`` per item (``image_path``, ``sample``: its samples row, ``word``: its class's object word):
    one masker call per class in the batch, one prompt each."""
    images = [load_rgb(it["image_path"]) for it in items]
    results: list = [None] * len(items)
    for label in sorted({it["sample"]["label"] for it in items}):
        idx = [k for k, it in enumerate(items) if it["sample"]["label"] == label]
        out = masker.mask([images[k] for k in idx], items[idx[0]]["word"], samples=[items[k]["sample"] for k in idx])
        for k, res in zip(idx, out):
            results[k] = res
    return results


def inpaint_batch(inpainter, items: Sequence[dict], cfg) -> list[np.ndarray]:
    """One generated image per item (``source_path``, ``mask_path``, ``prompt``, ``seed``), each at its
    source's size."""
    images = [load_rgb(it["source_path"]) for it in items]
    masks = [load_mask(it["mask_path"], images[k].shape[:2]) for k, it in enumerate(items)]
    return inpainter.inpaint(images, masks, [it["prompt"] for it in items], [int(it["seed"]) for it in items], cfg)


def score_batch(model, items: Sequence[dict], image_size: int, n_steps: int,
                internal_batch_size: Optional[int] = None, half: bool = False) -> list:
    """ψ, ρ and the IG map of each item (``id``, ``source_path``, ``path`` of the candidate, ``mask_path``,
    ``source_label``, ``target_label``)."""
    from ..method.scoring import score_candidates

    src = [load_rgb(it["source_path"]) for it in items]
    gen = [load_rgb(it["path"]) for it in items]
    msk = [load_mask(it["mask_path"], im.shape[:2]) for it, im in zip(items, src)]
    for it, s_im, g_im in zip(items, src, gen):
        if g_im.shape != s_im.shape:
            raise ProjectError(f"candidate {it['id']} ({it['path']}) is {g_im.shape[1]}x{g_im.shape[0]} but its source "
                               f"{it['source_path']} is {s_im.shape[1]}x{s_im.shape[0]}; regenerate it (delete the file "
                               f"and its row) so that it has its source's size")
    return score_candidates(model, src, gen, msk, [it["source_label"] for it in items],
                            [it["target_label"] for it in items], image_size, n_steps=n_steps,
                            internal_batch_size=internal_batch_size, half=half)
