"""The micro model's pretraining corpus: birds of both kinds on both places, in equal numbers.

Stable Diffusion never saw Waterbirds, but it has seen waterbirds on land and landbirds on water, and
it knows words for what birds look like. A micro model trained on the benchmark's biased train split
has seen neither. This corpus gives it both, from the renderer of the demo benchmark:

- every (bird kind, place) pair in equal numbers, so the place never tells which bird to draw;
- data seeds from ``CORPUS_SEEDS_FROM`` up, which no benchmark uses (``demo.data.check_seed``), so the
  model has seen no benchmark image, train, val or test;
- captions as a web corpus would have them: the place and the side of the image the bird is on, and in
  half of them the bird's shape in plain words ("a long necked bird", "a round bird") — never the
  benchmark's class names. The demo's prompts without a token ("a photo of a bird") name no kind; the
  learned token has to find it.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

import numpy as np

from .data import GENERATOR_VERSION, PLACE_NAMES, RESERVED_SEEDS_FROM, render_scene

CORPUS_SEEDS_FROM = RESERVED_SEEDS_FROM  # up to the judges' seeds (bench.judges.JUDGE_SEEDS_FROM)
# Words for the shape of each kind of bird, as captions describe it (the renderer's kinds 0 and 1).
SHAPE_WORDS = {0: ("round", "perching", "short beaked", "small round"),
               1: ("long necked", "swimming", "long billed", "long necked swimming")}
CAPTIONS = ("a photo of a {shape}bird on {place}", "a picture of a {shape}bird on the {side} on {place}",
            "a {shape}bird on {place}", "a photo of a {shape}bird on the {side}",
            "an image of a {shape}bird on the {side} in the {place}", "a photo of a {shape}bird")
CORPUS_WORDS = tuple(sorted({w for ws in SHAPE_WORDS.values() for phrase in ws for w in phrase.split()}))
SHAPE_SHARE = 0.5  # captions that describe the bird's shape


def corpus_seed(seed: int) -> int:
    return CORPUS_SEEDS_FROM + seed


def _render(args: tuple) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    seed, size, start, stop = args
    images, masks, kinds = [], [], []
    for i in range(start, stop):
        kind, place = i % 2, (i // 2) % 2
        scene = render_scene(np.random.default_rng([corpus_seed(seed), i, GENERATOR_VERSION]), kind, place, size)
        images.append(scene.image), masks.append(scene.mask), kinds.append((kind, place))
    return np.stack(images), np.stack(masks), kinds


def render_corpus(n: int, seed: int = 0, size: int = 64, workers: Optional[int] = None):
    """``n`` corpus scenes: (N x size x size x 3 uint8 images, N x size x size uint8 object masks, attributes per
    image: ``kind`` (0/1), ``place`` (a word), ``side`` (left/right))."""
    workers = workers or min(2, os.cpu_count() or 1)
    chunk = 500
    jobs = [(seed, size, a, min(n, a + chunk)) for a in range(0, n, chunk)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render, jobs))
    else:
        parts = [_render(j) for j in jobs]
    images = np.concatenate([p[0] for p in parts])
    masks = np.concatenate([p[1] for p in parts])
    attrs = []
    for (kind, place), m in zip((k for p in parts for k in p[2]), masks):
        xs = np.nonzero(m >= 128)[1]
        side = "left" if len(xs) and xs.mean() < m.shape[1] / 2 else "right"
        attrs.append({"kind": kind, "place": PLACE_NAMES[place], "side": side})
    return images, masks, attrs


def caption(rng: np.random.Generator, attrs: dict, shape_share: float = SHAPE_SHARE) -> str:
    """One caption of a corpus image: a template, with the bird's shape in words in ``shape_share`` of them (none
    when ``attrs`` has no ``kind``: a benchmark's train split is captioned without it)."""
    shape = ""
    if attrs.get("kind") is not None and rng.uniform() < shape_share:
        words = SHAPE_WORDS[attrs["kind"]]
        shape = words[int(rng.integers(len(words)))] + " "
    template = CAPTIONS[int(rng.integers(len(CAPTIONS)))]
    return template.format(shape=shape, place=attrs["place"], side=attrs["side"])


def colour_word(pixels: np.ndarray) -> str:
    """A colour name for the median colour of ``pixels`` (K x 3 uint8): class-agnostic caption text."""
    import colorsys

    if len(pixels) == 0:
        return "gray"
    r, g, b = (np.median(pixels, axis=0) / 255.0).tolist()
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if v < 0.22:
        return "black"
    if s < 0.2:
        return "white" if v > 0.75 else "gray"
    if h < 0.04 or h >= 0.93:
        return "red"
    if h < 0.11:
        return "orange" if v > 0.6 else "brown"
    if h < 0.18:
        return "yellow"
    if h < 0.45:
        return "green"
    if h < 0.7:
        return "blue"
    return "purple"


def caption_attributes(image: np.ndarray, mask: np.ndarray) -> dict[str, str]:
    """Caption attributes of one image: the bird's colour (diagnostic only) and its side of the image."""
    fg = mask >= 128
    ys, xs = np.nonzero(fg)
    side = "left" if len(xs) and xs.mean() < mask.shape[1] / 2 else "right"
    return {"colour": colour_word(image[fg]), "side": side}
