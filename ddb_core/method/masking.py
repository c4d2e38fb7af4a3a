"""Masking (Algorithm 1, step 4): M = LangSAM(x, "<class name>") — where in an image the causal part
(the object) is, the region the inpainting repaints.

One convention, everywhere: a mask is single-channel uint8, **255 = repaint** (the causal part,
DDB's edit region), 0 = keep. Images come in as RGB uint8 HWC. A masker is anything with
``mask(images, prompt, samples=None) -> list[MaskResult]``; ``samples`` are the images' sample
rows, for backends that read per-sample data (``provided``).

Backends (name → loader in ``MASKERS``):

- ``langsam``: text-prompted boxes from GroundingDINO (transformers'
  ``AutoModelForZeroShotObjectDetection``), then a box-prompted mask from SAM (the
  ``segment-anything`` package's ``SamPredictor``). Box choice: the best-scoring box, or the union
  of the masks of every box above the threshold. "No detection" is a status, not an error.
- ``gradcam``: Grad-CAM++ of the ERM classifier (the ``grad-cam`` package), thresholded.
- ``grabcut``: OpenCV GrabCut seeded from a centre box or a colour-contrast saliency map.
- ``provided``: masks read from files (the demo's ground truth, CUB segmentations, …).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import numpy as np

from ..project.errors import ConfigError, DDBError, WeightsUnavailableError

MASK_REPAINT, MASK_KEEP = 255, 0


@dataclass
class MaskResult:
    mask: Optional[np.ndarray]  # HxW uint8, 255 = repaint; None when status is not "ok"
    status: str  # "ok" | "no_detection"
    score: float  # detection score (langsam), mean map value in the mask (gradcam), 1.0 otherwise
    boxes: list[tuple[float, float, float, float, float]] = field(default_factory=list)  # x0, y0, x1, y1, score
    detail: str = ""

    @property
    def area(self) -> float:
        return float((self.mask == MASK_REPAINT).mean()) if self.mask is not None else 0.0


class Masker(Protocol):
    name: str

    def params(self) -> dict: ...

    def mask(self, images: Sequence[np.ndarray], prompt: str, samples: Optional[Sequence[dict]] = None) -> list[MaskResult]: ...


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow the repaint region by ``radius`` pixels (a disc), keeping the 0/255 convention."""
    if radius <= 0:
        return mask
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.where(cv2.dilate((mask == MASK_REPAINT).astype(np.uint8), kernel) > 0, MASK_REPAINT, MASK_KEEP).astype(np.uint8)


def _check_image(img: np.ndarray) -> None:
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ConfigError(f"images must be RGB uint8 HWC arrays, got shape {img.shape} dtype {img.dtype}")


# ---------------------------------------------------------------------------------------------
# provided


def box_of(mask: np.ndarray, margin: float = 0.12) -> np.ndarray:
    """The bounding box of a 255-mask grown by ``margin`` (a share of the image side); 255 inside."""
    ys, xs = np.nonzero(mask >= 128)
    out = np.zeros_like(mask)
    if len(ys) == 0:
        return out
    h, w = mask.shape
    my, mx = int(round(margin * h)), int(round(margin * w))
    out[max(0, ys.min() - my):ys.max() + my + 1, max(0, xs.min() - mx):xs.max() + mx + 1] = 255
    return out


class ProvidedMasker:
    """Masks read from files named by each sample's ``mask_path`` (resolved by ``resolve``).

    ``shape="box"`` repaints the object's bounding box grown by ``box_margin`` instead of its
    silhouette: the inpainting model then has room to draw another class's body shape.
    """

    name = "provided"

    def __init__(self, resolve: Callable[[str], Path], dilate_radius: int = 0, shape: str = "mask",
                 box_margin: float = 0.12):
        if shape not in ("mask", "box"):
            raise ConfigError(f"provided masker: shape must be 'mask' or 'box', got {shape!r}")
        if not 0 <= box_margin <= 1:
            raise ConfigError(f"provided masker: box_margin must be in [0, 1], got {box_margin}")
        self.resolve, self.dilate_radius, self.shape, self.box_margin = resolve, dilate_radius, shape, box_margin

    def params(self) -> dict:
        p = {"dilate": self.dilate_radius}
        if self.shape == "box":  # old parameter sets keep their hash
            p.update(shape="box", box_margin=self.box_margin)
        return p

    def mask(self, images, prompt, samples=None):
        from ..data.imaging import load_mask

        if samples is None:
            raise ConfigError("the 'provided' masker needs the samples (their mask_path) of the images")
        out = []
        for img, s in zip(images, samples):
            if not s.get("mask_path"):
                raise DDBError(f"sample {s.get('key', s.get('id'))} has no mask file; the 'provided' masker needs one per image")
            m = load_mask(self.resolve(s["mask_path"]), img.shape[:2])  # at the image's own size
            if self.shape == "box":
                m = box_of(m, self.box_margin)
            out.append(MaskResult(dilate(m, self.dilate_radius), "ok", 1.0) if m.any() else MaskResult(None, "no_detection", 0.0, detail="empty mask file"))
        return out


# ---------------------------------------------------------------------------------------------
# grabcut


def contrast_saliency(img: np.ndarray) -> np.ndarray:
    """HxW float in [0, 1]: colour distance from the image border's colours (objects stand out)."""
    x = img.astype(np.float32)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    rows_mean = np.stack([x[:, :4].mean((1)), x[:, -4:].mean((1))], 0).mean(0)  # per-row background colour
    d_row = np.linalg.norm(x - rows_mean[:, None, :], axis=2)
    d_border = np.min(np.linalg.norm(x[:, :, None, :] - border[None, None, ::max(1, len(border) // 64), :], axis=3), axis=2)
    s = np.minimum(d_row, d_border)
    return (s - s.min()) / (np.ptp(s) + 1e-6)


class GrabCutMasker:
    """OpenCV GrabCut, seeded from a centre box (``init='box'``) or from a saliency map."""

    name = "grabcut"

    def __init__(self, init: str = "box", margin: float = 0.15, iterations: int = 5, dilate_radius: int = 0,
                 saliency_quantile: float = 0.85):
        if init not in ("box", "saliency"):
            raise ConfigError(f"grabcut init must be 'box' or 'saliency', got {init!r}")
        if not 0 <= margin < 0.5:
            raise ConfigError(f"grabcut margin must be in [0, 0.5), got {margin}")
        self.init, self.margin, self.iterations, self.dilate_radius, self.q = init, margin, iterations, dilate_radius, saliency_quantile

    def params(self) -> dict:
        return {"init": self.init, "margin": self.margin, "iterations": self.iterations, "dilate": self.dilate_radius,
                "saliency_quantile": self.q}

    def _one(self, img: np.ndarray) -> MaskResult:
        import cv2

        _check_image(img)
        h, w = img.shape[:2]
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        m = np.zeros((h, w), np.uint8)
        bgr = np.ascontiguousarray(img[..., ::-1])
        if self.init == "box":
            x0, y0 = int(w * self.margin), int(h * self.margin)
            cv2.grabCut(bgr, m, (x0, y0, w - 2 * x0, h - 2 * y0), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        else:
            s = contrast_saliency(img)
            m[:] = cv2.GC_PR_BGD
            m[s >= np.quantile(s, self.q)] = cv2.GC_PR_FGD
            m[s >= np.quantile(s, min(0.99, self.q + 0.1))] = cv2.GC_FGD
            m[[0, -1], :] = cv2.GC_BGD
            m[:, [0, -1]] = cv2.GC_BGD
            cv2.grabCut(bgr, m, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        fg = (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)
        if not fg.any():
            return MaskResult(None, "no_detection", 0.0, detail="GrabCut found no foreground")
        return MaskResult(dilate(np.where(fg, MASK_REPAINT, MASK_KEEP).astype(np.uint8), self.dilate_radius), "ok", 1.0)

    def mask(self, images, prompt, samples=None):
        return [self._one(img) for img in images]


# ---------------------------------------------------------------------------------------------
# gradcam


class GradCamMasker:
    """Grad-CAM++ of a classifier for a target class, thresholded at ``threshold`` (map in [0, 1]).

    ``target``: ``"pred"`` (the predicted class), ``"label"`` (each sample's label), or an int.
    ``keep_high=False`` (DDB): the high-attribution region is repainted (255). ``keep_high=True``
    (SCGS): the high-attribution region is kept and the rest repainted.
    """

    name = "gradcam"

    def __init__(self, model, image_size: int, threshold: float = 0.5, target="pred", keep_high: bool = False,
                 dilate_radius: int = 0):
        if not 0 <= threshold <= 1:
            raise ConfigError(f"gradcam threshold must be in [0, 1], got {threshold}")
        self.model, self.image_size, self.threshold, self.target = model, image_size, threshold, target
        self.keep_high, self.dilate_radius = keep_high, dilate_radius

    def params(self) -> dict:
        return {"threshold": self.threshold, "target": str(self.target), "keep_high": self.keep_high,
                "dilate": self.dilate_radius, "method": "gradcam++"}

    def maps(self, images, targets: Sequence[int]) -> list[np.ndarray]:
        """Grad-CAM++ maps in [0, 1], one per image at that image's own size (images may differ in size).

        The classifier sees each image through ``imaging.classifier_view``; its map is resized back."""
        import torch
        import torch.nn.functional as F
        from pytorch_grad_cam import GradCAMPlusPlus
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from ..project.device import module_device
        from ..data.imaging import classifier_batch

        x = classifier_batch(images, self.image_size).to(module_device(self.model))  # N x 3 x S x S
        layer = self.model.layer4[-1]
        with GradCAMPlusPlus(model=self.model, target_layers=[layer]) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])  # N x S x S
        out = []
        for img, cam_map in zip(images, maps):
            h, w = img.shape[:2]
            if cam_map.shape != (h, w):
                cam_map = F.interpolate(torch.from_numpy(np.ascontiguousarray(cam_map))[None, None], size=(h, w),
                                        mode="bilinear", align_corners=False)[0, 0].numpy()
            out.append(np.clip(cam_map, 0, 1))
        return out

    def mask(self, images, prompt, samples=None):
        import torch

        from ..project.device import module_device
        from ..data.imaging import classifier_batch

        for img in images:
            _check_image(img)
        if self.target == "pred":
            with torch.no_grad():
                x = classifier_batch(images, self.image_size).to(module_device(self.model))
                targets = self.model.eval()(x).argmax(1).tolist()
        elif self.target == "label":
            if samples is None:
                raise ConfigError("gradcam target 'label' needs the samples of the images")
            targets = [s["label"] for s in samples]
        else:
            targets = [int(self.target)] * len(images)
        out = []
        for cam_map, t in zip(self.maps(images, targets), targets):
            high = cam_map >= self.threshold
            region = ~high if self.keep_high else high
            if not region.any():
                out.append(MaskResult(None, "no_detection", 0.0, detail=f"no pixel on the repaint side of threshold {self.threshold}"))
                continue
            m = dilate(np.where(region, MASK_REPAINT, MASK_KEEP).astype(np.uint8), self.dilate_radius)
            out.append(MaskResult(m, "ok", float(cam_map[high].mean()) if high.any() else 0.0, detail=f"target class {t}"))
        return out


# ---------------------------------------------------------------------------------------------
# langsam

SAM_CHECKPOINTS = {  # name -> (builder in segment_anything.sam_model_registry, file name)
    "sam_vit_b": ("vit_b", "sam_vit_b_01ec64.pth"),
    "sam_vit_l": ("vit_l", "sam_vit_l_0b3195.pth"),
    "sam_vit_h": ("vit_h", "sam_vit_h_4b8939.pth"),
}
SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


def sam_cache_dir() -> Path:
    return Path(os.environ.get("DDB_SAM_DIR", Path.home() / ".cache" / "ddb" / "sam"))


class LangSAMMasker:
    """GroundingDINO boxes for the text prompt → SAM mask of the box(es)."""

    name = "langsam"

    def __init__(self, detector, processor, sam_predictor, box_threshold: float = 0.3, text_threshold: float = 0.25,
                 box_choice: str = "best", dilate_radius: int = 0, model_ids: Optional[dict] = None):
        if box_choice not in ("best", "union"):
            raise ConfigError(f"box_choice must be 'best' or 'union', got {box_choice!r}")
        for name, v in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
            if not 0 <= v <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {v}")
        self.detector, self.processor, self.predictor = detector, processor, sam_predictor
        self.box_threshold, self.text_threshold, self.box_choice = box_threshold, text_threshold, box_choice
        self.dilate_radius, self.model_ids = dilate_radius, model_ids or {}

    def params(self) -> dict:
        return {"box_threshold": self.box_threshold, "text_threshold": self.text_threshold, "box_choice": self.box_choice,
                "dilate": self.dilate_radius, **self.model_ids}

    @classmethod
    def load(cls, dino: str = "IDEA-Research/grounding-dino-tiny", sam="sam_vit_b", device: str = "auto",
             **kwargs) -> "LangSAMMasker":
        """Load GroundingDINO (hub id or local folder) and SAM (registry name, checkpoint path, or an
        already-built ``SamPredictor``).

        Offline, missing weights raise ``WeightsUnavailableError`` naming each file and where to put it.
        """
        from ..project.device import place, resolve_device

        dev = resolve_device(device)
        problems = []
        try:
            from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

            processor = AutoProcessor.from_pretrained(dino)
            detector = place(AutoModelForZeroShotObjectDetection.from_pretrained(dino), dev, what="langsam detector").eval()
        except (OSError, ValueError) as e:
            problems.append(f"GroundingDINO {dino!r}: {type(e).__name__}: {str(e).splitlines()[0]}. Provide it as a local "
                            f"folder (config.json, model.safetensors, preprocessor_config.json, tokenizer files) and pass "
                            f"its path, or place it in the Hugging Face cache (HF_HOME) while online")
        try:
            if hasattr(sam, "set_image"):  # an already-built predictor goes to the same device
                place(sam.model, dev, what="langsam sam")
                predictor = sam
            else:
                predictor = sam_predictor(sam, dev)
        except WeightsUnavailableError as e:
            problems.append(str(e))
        if problems:
            raise WeightsUnavailableError("the langsam masker cannot load its models:\n  - " + "\n  - ".join(problems))
        sam_id = sam if isinstance(sam, (str, os.PathLike)) else type(sam).__name__
        return cls(detector, processor, predictor, model_ids={"dino": str(dino), "sam": str(sam_id)}, **kwargs)

    def _boxes(self, img: np.ndarray, prompt: str) -> list[tuple[float, float, float, float, float]]:
        import torch
        from PIL import Image

        text = prompt.strip().lower()
        if not text.endswith("."):
            text += "."  # GroundingDINO separates phrases with periods
        inputs = self.processor(images=Image.fromarray(img), text=text, return_tensors="pt")
        dev = next(self.detector.parameters()).device
        inputs = {k: v.to(dev) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.no_grad():
            outputs = self.detector(**inputs)
        res = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[img.shape[:2]])[0]
        boxes = [(*map(float, b.tolist()), float(s)) for b, s in zip(res["boxes"], res["scores"])]
        return sorted(boxes, key=lambda b: -b[4])  # by score, not by query order

    def refind(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], prompt: str) -> list[tuple[float, int]]:
        """The object found again in each (generated) image inside its mask's box: (the best score among the
        detector's boxes that lie mostly inside the mask's box — at least half of the box's area —, how many such
        boxes), (0.0, 0) when none. The detector's thresholds are the masker's."""
        out = []
        for img, m in zip(images, masks):
            _check_image(img)
            ys, xs = np.nonzero(m >= 128)
            if not len(ys):
                out.append((0.0, 0))
                continue
            mx0, my0, mx1, my1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            inside = []
            for x0, y0, x1, y1, score in self._boxes(img, prompt):
                area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
                iw = max(0.0, min(x1, mx1) - max(x0, mx0))
                ih = max(0.0, min(y1, my1) - max(y0, my0))
                if area > 0 and iw * ih >= 0.5 * area:
                    inside.append(score)
            out.append((max(inside) if inside else 0.0, len(inside)))
        return out

    def mask(self, images, prompt, samples=None):
        out = []
        for img in images:
            _check_image(img)
            boxes = self._boxes(img, prompt)
            if not boxes:
                out.append(MaskResult(None, "no_detection", 0.0, detail=f"no box above {self.box_threshold} for {prompt!r}"))
                continue
            chosen = boxes[:1] if self.box_choice == "best" else boxes
            self.predictor.set_image(img)
            union = np.zeros(img.shape[:2], bool)
            for x0, y0, x1, y1, _s in chosen:
                masks, _scores, _ = self.predictor.predict(box=np.array([x0, y0, x1, y1]), multimask_output=False)
                union |= masks[0].astype(bool)
            if not union.any():
                out.append(MaskResult(None, "no_detection", 0.0, boxes=boxes, detail="SAM returned an empty mask"))
                continue
            m = dilate(np.where(union, MASK_REPAINT, MASK_KEEP).astype(np.uint8), self.dilate_radius)
            out.append(MaskResult(m, "ok", chosen[0][4], boxes=boxes))
        return out


def sam_predictor(sam: str, device):
    """A ``SamPredictor`` from a registry name (file looked up in ``sam_cache_dir()``) or a path."""
    import torch
    from segment_anything import SamPredictor, sam_model_registry

    if sam in SAM_CHECKPOINTS:
        kind, fname = SAM_CHECKPOINTS[sam]
        path = sam_cache_dir() / fname
    else:
        path = Path(sam)
        kind = next((k for k, (kk, f) in SAM_CHECKPOINTS.items() if f == path.name), None)
        kind = SAM_CHECKPOINTS[kind][0] if kind else next((k for k in ("vit_b", "vit_l", "vit_h") if k in path.name), None)
        if kind is None:
            raise ConfigError(f"cannot tell the SAM model size of {path}: name it like sam_vit_b_*.pth, or pass sam_vit_b|l|h")
    if not path.is_file():
        fname = path.name
        raise WeightsUnavailableError(
            f"SAM checkpoint {fname} not found at {path}. Download {SAM_URL}{fname} on a machine with internet and "
            f"copy it there (DDB_SAM_DIR moves the folder), or pass its path")
    from ..project.device import place

    model = sam_model_registry[kind]()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return SamPredictor(place(model, device, what="langsam sam").eval())


# ---------------------------------------------------------------------------------------------
# registry

MASKERS = ("langsam", "gradcam", "grabcut", "provided")


MAX_DILATE = 512  # px: a larger radius repaints every image whole (and its kernel alone would exhaust memory)


def check_masker_options(name: str, options, stored: bool = True) -> dict:
    """``options`` if ``name`` is a masker and they are options it takes; else a ``ConfigError`` naming the one
    at fault. ``stored`` (options kept in the project, as JSON): each is a number, text, true/false or null,
    and the model paths (``dino``, ``sam``) are text — from Python, a loaded model may be passed instead."""
    if name not in MASKERS:
        raise ConfigError(f"unknown masker {name!r}; choose one of {', '.join(MASKERS)}")
    if not isinstance(options, dict):
        raise ConfigError(f"{name} masker options must be an object of name: value, got {type(options).__name__}")
    accepted = _BACKEND_OPTIONS[name]()
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"{name} masker: unknown option(s) {', '.join(map(str, unknown))}; it takes "
                          f"{', '.join(sorted(accepted))}")
    for key in ("box_threshold", "text_threshold"):  # langsam's scores in [0, 1]: checked before a model loads
        v = options.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
            raise ConfigError(f"{name} masker option {key} must be a number in [0, 1], got {v!r}")
    radius = options.get("dilate_radius")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, (int, float)) or radius != int(radius)
                               or not 0 <= radius <= MAX_DILATE):
        raise ConfigError(f"{name} masker option dilate_radius must be a whole number of pixels in 0..{MAX_DILATE}, "
                          f"got {radius!r}")
    for key, value in options.items() if stored else ():
        if key in ("dino", "sam") and not isinstance(value, str):
            raise ConfigError(f"{name} masker option {key} must be a path or a hub id (text), got "
                              f"{type(value).__name__} {value!r}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{name} masker option {key} must be a number, text or true/false, got "
                              f"{type(value).__name__} {value!r}")
    return options


def build_masker(name: str, *, project=None, device: Optional[str] = None, **options) -> Masker:
    """Build a masker by name. ``project`` supplies the ERM model (gradcam) and mask paths (provided).
    An option the backend does not take is a ``ConfigError`` naming it and the ones it does take.
    ``device``: where the backend's models run (gradcam, langsam; a langsam ``device`` option wins)."""
    check_masker_options(name, options, stored=False)
    return _build(name, project, options, device or "auto")


def _params(fn, skip=("self",)) -> set[str]:
    import inspect

    return {name for name, p in inspect.signature(fn).parameters.items()
            if name not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


_BACKEND_OPTIONS = {
    "grabcut": lambda: _params(GrabCutMasker.__init__),
    "provided": lambda: _params(ProvidedMasker.__init__, ("self", "resolve")),
    "gradcam": lambda: _params(GradCamMasker.__init__, ("self", "model", "image_size")),
    "langsam": lambda: _params(LangSAMMasker.load, ("cls",)) | _params(
        LangSAMMasker.__init__, ("self", "detector", "processor", "sam_predictor", "model_ids")),
}


class RemoteMasker:
    """A masker that runs on the Ray engine's workers only: its name, its options and the parameters the same
    masker built here would have (so its masks are stored, found again and reused under the same parameter set),
    without loading its models in this process. ``mask`` is refused here."""

    def __init__(self, name: str, options: dict, params: dict, device: str = "auto"):
        self.name, self.options, self._params, self.device = name, dict(options), dict(params), device

    def params(self) -> dict:
        return dict(self._params)

    def mask(self, images, prompt, samples=None):
        raise ConfigError(f"the {self.name} masker of this run is loaded on the Ray workers, not in this process")


def remote_masker(name: str, options: dict, project=None, device: str = "auto") -> RemoteMasker:
    """The ``RemoteMasker`` of ``build_masker(name, device=device, **options)``: langsam's parameters from its options
    alone (its models are not loaded here); the other maskers are small, built on the CPU to read theirs."""
    check_masker_options(name, options, stored=False)
    if name == "langsam":
        load_opts = _params(LangSAMMasker.load, ("cls",))
        sam = options.get("sam", "sam_vit_b")
        ids = {"dino": str(options.get("dino", "IDEA-Research/grounding-dino-tiny")),
               "sam": str(sam if isinstance(sam, (str, os.PathLike)) else type(sam).__name__)}
        rest = {k: v for k, v in options.items() if k not in load_opts}
        return RemoteMasker(name, options, LangSAMMasker(None, None, None, model_ids=ids, **rest).params(), device)
    return RemoteMasker(name, options, _build(name, project, options, "cpu").params(), device)


def _build(name: str, project, options: dict, device: str = "auto") -> Masker:
    if name == "grabcut":
        return GrabCutMasker(**options)
    if name == "provided":
        if project is None:
            raise ConfigError("the 'provided' masker needs a project (to resolve mask paths)")
        return ProvidedMasker(project.dataset_path, **options)
    if name == "gradcam":
        if project is None:
            raise ConfigError("the 'gradcam' masker needs a project (its ERM model)")
        from ..classifiers.models import load_classifier

        erm = project.active_erm()
        model, _, _ = load_classifier(project.project_path(erm["path"]), erm["arch"], erm["num_classes"],
                                      device=device, what="gradcam masker")
        return GradCamMasker(model, erm["image_size"], **options)
    if name == "langsam":
        return LangSAMMasker.load(**{"device": device, **options})
    raise ConfigError(f"unknown masker {name!r}; choose one of {', '.join(MASKERS)}")
