"""SCGS (Spurious Correlations Guided Synthesis) on the same core as DDB.

Consumes a project with an active ERM model; produces ``selections`` rows (purpose ``scgs``),
Grad-CAM++ masks and candidates with ``method = 'scgs'`` — reviewed, scored, exported and used
for retraining by the same code as DDB's.

1. **Selection** (§II-C): per class, the training images the ERM model misclassifies; k-means on
   their ERM penultimate-layer features (``clusters`` per class); from each cluster, images drawn
   without replacement with probability proportional to the Gaussian density of the cluster at
   their feature (Eq. 3; the covariance is regularised — Ledoit–Wolf shrinkage — because the
   features outnumber the images); ``sample_fraction`` of each class's misclassified images.
2. **Masks** (§II-D): Grad-CAM++ of the ERM model for its (wrong) prediction. The
   high-contribution region is the spurious part and is **kept**; everything else is repainted.
   In our mask convention (255 = repaint) the SCGS mask is therefore 255 on the *low*-attribution
   region — the opposite of a DDB mask.
3. **Generation** (§II-E): inpainting with the image's **true** class ("a photo of a {class}",
   or its textual-inversion token when one exists); per class, ``generate_fraction`` × the number
   of training images of the other classes (paper: 40%; 20% on CelebA), spread over the sampled
   images as seeded variants (at most ``max_variants`` each).
4. SCGS does not prune: its candidates are kept automatically unless pruning by ψ/ρ is turned on
   for the method (``pruning.set_method_pruning(project, "scgs", True)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..project.progress import CancelToken, ProgressFn
from ..project.store import Project


@dataclass(frozen=True)
class SCGSConfig:
    clusters: int = 2  # k-means clusters per class (paper: 4 on MetaShift, 2 on Waterbirds and CelebA)
    sample_fraction: float = 0.2  # of each class's misclassified training images
    cam_threshold: float = 0.5  # Grad-CAM++ map (in [0, 1]) above which a pixel is "high contribution" (kept)
    generate_fraction: float = 0.4  # generated per class, as a share of the other classes' training images
    max_variants: int = 20  # candidates per sampled image at most
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clusters < 1:
            raise ConfigError(f"clusters must be >= 1, got {self.clusters}")
        if not 0 < self.sample_fraction <= 1:
            raise ConfigError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")
        if not 0 <= self.cam_threshold <= 1:
            raise ConfigError(f"cam_threshold must be in [0, 1], got {self.cam_threshold}")
        if self.generate_fraction < 0:
            raise ConfigError(f"generate_fraction must be >= 0, got {self.generate_fraction}")
        if self.max_variants < 1:
            raise ConfigError(f"max_variants must be >= 1, got {self.max_variants}")


def gaussian_cluster_sample(features: np.ndarray, labels_k: np.ndarray, n_total: int, rng: np.random.Generator) -> list[int]:
    """Indices drawn from each cluster ∝ its size, within it ∝ the Gaussian density (regularised covariance)."""
    from sklearn.covariance import LedoitWolf

    out: list[int] = []
    clusters = sorted(set(labels_k.tolist()))
    sizes = {c: int((labels_k == c).sum()) for c in clusters}
    n_all = sum(sizes.values())
    quotas = _quotas(sizes, min(n_total, n_all))
    for c in clusters:
        idx = np.nonzero(labels_k == c)[0]
        x = features[idx]
        if len(idx) > 2:
            lw = LedoitWolf().fit(x)
            cov, mu = lw.covariance_, lw.location_
            sign, logdet = np.linalg.slogdet(cov)
            inv = np.linalg.pinv(cov)
            d = x - mu
            logp = -0.5 * (np.einsum("ij,jk,ik->i", d, inv, d) + logdet + x.shape[1] * math.log(2 * math.pi))
            p = np.exp(logp - logp.max())
            p = p / p.sum()
        else:
            p = np.full(len(idx), 1.0 / len(idx))
        k = min(quotas.get(c, 0), len(idx))
        if k:
            out += idx[rng.choice(len(idx), size=k, replace=False, p=p)].tolist()
    return sorted(out)


def _quotas(sizes: dict[int, int], n_total: int) -> dict[int, int]:
    """Split ``n_total`` over clusters ∝ size (largest remainders), never above a cluster's size."""
    n_all = sum(sizes.values())
    if n_total <= 0 or n_all == 0:
        return {c: 0 for c in sizes}
    exact = {c: n_total * n / n_all for c, n in sizes.items()}
    q = {c: min(sizes[c], int(exact[c])) for c in sizes}
    for c in sorted(sizes, key=lambda c: (-(exact[c] - int(exact[c])), c)):
        if sum(q.values()) >= n_total:
            break
        if q[c] < sizes[c]:
            q[c] += 1
    return q


def select_scgs(project: Project, cfg: SCGSConfig = SCGSConfig(), device: Optional[str] = None) -> dict:
    """Misclassified → k-means → Gaussian sampling, per class; replaces earlier SCGS selections.
    ``device``: where the ERM model computes the features (default: the project's device setting)."""
    from ..project.settings import compute_device
    from sklearn.cluster import KMeans

    from ..classifiers.models import load_classifier
    from ..classifiers.models import features
    from ..classifiers.training import split_dataset

    erm = project.active_erm()
    model, _a, _n = load_classifier(project.project_path(erm["path"]), erm["arch"], erm["num_classes"],
                                    device=compute_device(project, device), what="scgs features")
    rows = project.samples("train", "id, label, erm_pred, erm_loss, erm_model_id")
    if any(r["erm_model_id"] != erm["id"] for r in rows):
        raise ProjectError("the training samples are not scored by the active ERM model: re-run `ddb erm train` or `ddb erm load`")
    rng = np.random.default_rng(cfg.seed)
    report, out_rows = {}, []
    ds, all_rows = split_dataset(project, "train", erm["image_size"])
    pos = {r["id"]: k for k, r in enumerate(all_rows)}
    for label, name in enumerate(project.class_names):
        mis = [r for r in rows if r["label"] == label and r["erm_pred"] != label]
        if not mis:
            report[label] = {"misclassified": 0, "sampled": 0, "note": f"the ERM model misclassifies no training image of "
                             f"class {name!r}: SCGS has nothing to sample for it"}
            continue
        sub = _Subset(ds, [pos[r["id"]] for r in mis])
        feats = features(model, sub)
        k = min(cfg.clusters, len(mis))
        km = KMeans(n_clusters=k, n_init=10, random_state=cfg.seed).fit(feats)
        n_take = max(1, round(cfg.sample_fraction * len(mis)))
        picked = gaussian_cluster_sample(feats, km.labels_, n_take, rng)
        out_rows += [{"erm_model_id": erm["id"], "purpose": "scgs", "label": label, "sample_id": mis[i]["id"], "rank": r,
                      "loss": mis[i]["erm_loss"]} for r, i in enumerate(picked)]
        report[label] = {"misclassified": len(mis), "clusters": k, "cluster_sizes": np.bincount(km.labels_).tolist(),
                         "sampled": len(picked)}
    with project.write():
        project.db.execute("delete from selections where purpose = 'scgs'")
        if out_rows:
            project.db["selections"].insert_all(out_rows)
        project.set_meta("scgs_config", asdict(cfg))
    if not out_rows:
        raise ProjectError("SCGS found no misclassified training image in any class (the ERM model fits the training set "
                           "perfectly), so there is nothing to generate from")
    return report


class _Subset:
    def __init__(self, ds, idx):
        self.ds, self.idx = ds, idx

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, k):
        return self.ds[self.idx[k]]


def scgs_masker(project: Project, cfg: SCGSConfig = SCGSConfig(), device: Optional[str] = None):
    """Grad-CAM++ of the ERM model for its prediction; the high region kept (SCGS convention)."""
    from ..project.settings import compute_device
    from .masking import build_masker

    return build_masker("gradcam", project=project, device=compute_device(project, device), threshold=cfg.cam_threshold,
                        target="pred", keep_high=True)


def variants_per_class(project: Project, cfg: SCGSConfig) -> dict[int, int]:
    from .selection import selected

    counts = {r["label"]: r["n"] for r in project.db.query(
        "select label, count(*) as n from samples where split = 'train' group by label")}
    out = {}
    for label in range(len(project.class_names)):
        n_sel = len(selected(project, "scgs", label))
        want = cfg.generate_fraction * sum(n for c, n in counts.items() if c != label)
        out[label] = 0 if n_sel == 0 else min(cfg.max_variants, max(1, math.ceil(want / n_sel)))
    return out


def generate_scgs(project: Project, inpainter, cfg: SCGSConfig = SCGSConfig(), inpaint=None,
                  on_progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None) -> dict:
    """Masks and candidates (method 'scgs', direction i -> i) for every class with sampled images."""
    # upward: SCGS's generation step is DDB's inpainting stage, run by the pipeline with SCGS's masks and prompts
    from ..pipeline.generation import GenerationConfig, generate
    from .inpainting import InpaintConfig

    masker = scgs_masker(project, cfg, device=(inpaint or InpaintConfig()).device)
    summary = {}
    for label, v in variants_per_class(project, cfg).items():
        if v == 0:
            summary[f"{label}->{label}"] = {"sources": 0, "candidates": 0}
            continue
        summary.update(generate(project, inpainter, masker, [(label, label)],
                                GenerationConfig(seed=cfg.seed, method="scgs", purpose="scgs", variants=v),
                                inpaint or InpaintConfig(), on_progress=on_progress, cancel=cancel))
    return summary
