"""The offline demo's pipeline: the settings the demo project and ``bench demo`` share, and the
stages that prepare its candidates — ERM → selection (D_i, Ψ_i) → textual inversion → masks →
generation → scoring — each skipped when it is done, so an interrupted preparation resumes.

The app builds its demo project with ``DemoPipelineConfig.app()`` (a few dozen candidates per
direction, reviewable in minutes); ``bench demo`` with its own, larger configuration (a subclass).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from ..pipeline.generation import GenerationConfig, compute_selected_masks, generate, invert_classes, score
from ..method.inpainting import InpaintConfig, MICRO_MODEL
from ..method.inversion import InversionConfig
from ..method.selection import SelectionConfig, select
from ..pipeline.components import load_inpainter, load_masker, set_pipeline_settings
from ..project.store import Project
from ..classifiers.training import TrainConfig, train_classifier

# The demo's ERM recipe: the cheapest that meets the demo's val targets (`ddb bench calibrate`, in
# docs/benchmarks.md): ResNet-18 at half width, 4 epochs.
DEMO_ERM = TrainConfig(arch="resnet18_w32", epochs=4)
STATE_KEY = "bench_demo"  # the project meta key of the finished stages (named before the demo had its own wing)


@dataclass(frozen=True)
class DemoPipelineConfig:
    erm: TrainConfig = DEMO_ERM
    k: float = 300  # D_i per class (count)
    ti_size: int = 30
    # the highest-loss train images of each class under the ERM model (the paper's choice; no group labels): with the
    # window model the tokens measured on val are learned this way (`bench inpainter`, docs/benchmarks.md)
    ti_source: str = "high_loss"
    ti_steps: int = 400
    masker_shape: str = "box"  # provided masks: the object's box ("box") or silhouette ("mask")
    masker_dilate: int = 0  # provided masks grown by this many pixels (the masker's dilate option)
    # textual inversion's loss inside each image's object ("mask", the product's default: the UNet is given the box
    # that generation repaints) or over the whole image ("image")
    ti_region: str = "mask"
    inpaint_steps: int = 25  # as the val gates measured it (`bench inpainter`)
    guidance: float = 7.5
    ig_steps: int = 20
    model: str = MICRO_MODEL

    @property
    def mask_shape_name(self) -> str:
        """The repaint mask as ``bench inpainter`` names it: "box", "object" or "object+Npx"."""
        if self.masker_shape == "box":
            return "box" + (f"+{self.masker_dilate}px" if self.masker_dilate else "")
        return "object" + (f"+{self.masker_dilate}px" if self.masker_dilate else "")

    def masker_options(self) -> dict:
        opts = {"shape": self.masker_shape} if self.masker_shape != "mask" else {}
        return {**opts, "dilate_radius": self.masker_dilate} if self.masker_dilate else opts

    @staticmethod
    def app() -> "DemoPipelineConfig":
        """The app's demo project: 40 source images per class, reviewable a few minutes after first launch. Its tokens
        and generation follow the recipe the val gates measured (`bench inpainter`: 30 high-loss train images per class
        under ``DEMO_ERM``, 400 steps; 25 denoising steps)."""
        return DemoPipelineConfig(k=40, ti_size=30, ti_steps=400, inpaint_steps=25, ig_steps=16)


def state(project: Project) -> dict:
    return project.get_meta(STATE_KEY) or {}


def save_state(project: Project, key: str, value) -> None:
    with project.write():
        st = state(project)
        st[key] = value
        project.set_meta(STATE_KEY, st)


def timed(times: dict, name: str, fn):
    t0 = time.monotonic()
    out = fn()
    times[name] = round(times.get(name, 0.0) + time.monotonic() - t0, 1)
    return out


def _recorded(project: Project, stage: str, config: dict, fn):
    """``fn()`` with a ``runs`` row for its stage, as the command line's stages have (the Pipeline screen and the
    reproducibility bundle list them)."""
    with project.recorded_run(stage, config):
        return fn()


def prepare(project: Project, cfg: DemoPipelineConfig, times: dict, on_progress=None, cancel=None,
            erm_seed: int = 0, draw_seed: int = 0) -> None:
    """ERM (``erm_seed``, active) → selection → tokens → masks → candidates → scores (each skipped when
    done); ``times`` collects each stage's seconds. ``draw_seed`` seeds the textual inversion and the generation
    noise (``bench demo`` gives each data seed its own, so that its intervals include the token's draw)."""
    if project.active_erm_id is None:
        timed(times, f"erm (seed {erm_seed})" if erm_seed else "erm (seed 0)",
              lambda: train_classifier(project, replace(cfg.erm, seed=erm_seed), role="erm",
                                       on_progress=on_progress, cancel=cancel))
    sel = SelectionConfig(k=cfg.k, ti_size=cfg.ti_size, ti_source=cfg.ti_source)
    if state(project).get("selection") != asdict(sel):
        timed(times, "selection", lambda: _recorded(project, "select", asdict(sel), lambda: select(project, sel)))
        save_state(project, "selection", asdict(sel))
    set_pipeline_settings(project, inpaint_model=cfg.model, masker="provided",
                          masker_options=cfg.masker_options())
    inp_cfg = InpaintConfig(model=cfg.model, steps=cfg.inpaint_steps, guidance=cfg.guidance, batch_size=32)
    inpainter = None
    labels = range(len(project.class_names))
    masker = load_masker(project)
    from ..pipeline.generation import latest_token
    from ..method.inpainting import model_hash, resolve_model_ref

    sha = model_hash(str(resolve_model_ref(cfg.model)))
    if cfg.ti_size > 0 and any(latest_token(project, c, sha) is None for c in labels):  # none learned on this model
        inpainter = load_inpainter(project, cfg.model)
        inv = InversionConfig(steps=cfg.ti_steps, region=cfg.ti_region, seed=draw_seed)
        timed(times, "textual inversion", lambda: _recorded(
            project, "invert", {"labels": list(labels), "inversion": asdict(inv), "model": inpainter.model_ref,
                                "masker": masker.name},
            lambda: invert_classes(project, inpainter, labels, inv, on_progress=on_progress, cancel=cancel, masker=masker)))
    timed(times, "masks", lambda: _recorded(
        project, "mask", {"masker": masker.name, "params": masker.params(), "labels": None},
        lambda: compute_selected_masks(project, masker, on_progress=on_progress, cancel=cancel)))
    gen_cfg = GenerationConfig(seed=draw_seed, use_tokens=cfg.ti_size > 0)
    timed(times, "generation", lambda: _recorded(
        project, "generate", {"pairs": None, "generation": asdict(gen_cfg), "inpaint": asdict(inp_cfg),
                              "masker": masker.name, "engine": "local"},
        lambda: generate(project, inpainter or load_inpainter(project, cfg.model), masker, cfg=gen_cfg, inpaint=inp_cfg,
                         on_progress=on_progress, cancel=cancel)))
    # 64 rows per IG pass: about 15% faster than 16 on CPU at the demo's 64 px (the library default suits 224 px)
    timed(times, "scoring", lambda: _recorded(
        project, "score", {"n_steps": cfg.ig_steps, "rescore": False, "engine": "local", "device": None, "ig_dtype": "float32"},
        lambda: score(project, n_steps=cfg.ig_steps, internal_batch_size=64, on_progress=on_progress, cancel=cancel)))
