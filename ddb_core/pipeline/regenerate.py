"""One candidate made again with a mask the reviewer drew (the Review screen's *Regenerate with this mask*): the
same source, token, prompt and seed; the new mask stored as a ``manual`` mask; the new candidate scored at once and
the old one kept.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict

import numpy as np

from ..data.imaging import load_rgb
from ..data.thumbnails import write_thumbnail
from ..method.inpainting import InpaintConfig, Inpainter
from ..project.errors import ConfigError, ProjectError
from ..project.store import Project, now
from .generation import _rel, _write_png, candidate_key, latest_token, score


def regenerate_with_mask(project: Project, candidate_id: int, mask: np.ndarray, inpainter: Inpainter,
                         inpaint: InpaintConfig = InpaintConfig(), n_steps: int = 50, who: str = "user") -> int:
    """A new candidate from the same source, prompt and seed as ``candidate_id`` but with ``mask``
    (255 = repaint, the source's size), stored as a ``manual`` mask and scored at once. The old
    candidate is kept; the new one records where it came from. Returns the new candidate's id."""
    from ..method.masking import params_hash

    rows = list(project.db.query("select c.*, s.path as source_path, s.label as source_true from candidates c "
                                 "join samples s on s.id = c.source_id where c.id = ?", [int(candidate_id)]))
    if not rows:
        raise ProjectError(f"no candidate with id {candidate_id}")
    c = rows[0]
    src = load_rgb(project.dataset_path(c["source_path"]))
    mask = np.asarray(mask)
    if mask.shape != src.shape[:2]:
        raise ConfigError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the source image is {src.shape[1]}x{src.shape[0]}")
    mask = np.where(mask >= 128, 255, 0).astype(np.uint8)
    if not mask.any():
        raise ConfigError("the mask is empty: paint the region to repaint")
    digest = hashlib.sha256(mask.tobytes()).hexdigest()[:12]
    params = {"drawn_by": who, "from_candidate": int(candidate_id), "mask_sha256": digest}
    ph = params_hash(params)
    path = project.root / "masks" / f"manual-{ph}" / f"{c['source_id']}.png"
    _write_png(path, mask)
    with project.write():
        mask_id = project.db["masks"].insert({
            "sample_id": c["source_id"], "backend": "manual", "params_hash": ph, "params": json.dumps(params),
            "status": "ok", "score": 1.0, "area": float((mask == 255).mean()), "path": _rel(project, path),
            "created_at": now()}, replace=True).last_pk
    prov = json.loads(c["provenance"] or "{}")
    token = prov.get("token")
    if token and token not in inpainter.tokens:
        tok = latest_token(project, c["target_label"])
        if tok is None or tok["token"] != token:
            raise ProjectError(f"the token {token} of candidate {candidate_id} is no longer stored in the project")
        inpainter.load_token(project.project_path(tok["path"]), token)
    t0 = time.monotonic()
    out = inpainter.inpaint([src], [mask], [c["prompt"]], [c["seed"]], inpaint)[0]
    key = candidate_key(c["method"], c["source_id"], c["source_label"], c["target_label"], f"manual-{ph}")
    out_path = project.root / "candidates" / f"{c['source_label']}-{c['target_label']}" / f"{key.replace(':', '_').replace('->', '-')}.png"
    _write_png(out_path, out)
    write_thumbnail(project, _rel(project, out_path), out)
    with project.write():
        project.db.execute("delete from candidates where key = ?", [key])
        new_id = project.db["candidates"].insert({
            "key": key, "method": c["method"], "source_id": c["source_id"], "source_label": c["source_label"],
            "target_label": c["target_label"], "mask_id": mask_id, "path": _rel(project, out_path), "seed": c["seed"],
            "prompt": c["prompt"], "created_at": now(),
            "provenance": json.dumps({**prov, "masker": "manual", "mask_params": params, "regenerated_from": int(candidate_id),
                                      "model": inpainter.model_ref, "model_sha256": inpainter.model_sha,
                                      "inpaint": asdict(inpaint), "seconds": round(time.monotonic() - t0, 3)})}).last_pk
    score(project, n_steps=n_steps)
    return int(new_id)
