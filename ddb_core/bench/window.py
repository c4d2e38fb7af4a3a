"""The repaint window of the demo's micro model, chosen on val (``ddb bench window``).

The micro model repaints a square window around the mask, ``crop_scale`` times the longer side of the mask's box,
resized to the model's 32 px. A wide window gives the model context around the bird, but squeezes the bird into
fewer latent pixels, and the result is stretched back over more of the source's pixels: blurrier. A window close
to the mask keeps more of the source's pixels per latent pixel but shows the model less of the place around it.

For each scale, the quality gates of ``bench inpainter`` (the first 48 **val** images of each direction, three
seeds, the demo's box masks and token recipe), with that window in textual inversion and generation alike, and
a grid to look at. The rule, fixed before the figures: among the scales that meet every gate (target bird ≥ 80% in
both directions, ≥ 20 points above the plain prompt, background error ≤ 0.04), the one with the highest lower
direction's target-bird rate; a tie goes to the larger lower gain over the plain prompt, then to the wider window.
Each scale's result is kept in ``docs/bench/inpainter-window-<scale>.json``; a run resumes with the scales not yet
measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

from ..project.progress import ProgressFn
from .docs import write_result

SCALES = (1.25, 1.5, 1.75, 2.0)
RECIPE = dict(shapes=("box",), ti_source="high_loss", ti_region="mask", ti_shape="object", ti_repaint="box",
              ti_object_share=0.75)  # the demo's box masks and token recipe (bench inpainter's mixed75 section)


def _tag(scale: float) -> str:
    return f"{scale:g}".replace(".", "")


def choose(rows: list[dict]) -> Optional[float]:
    """The scale the rule picks from ``rows`` (each: scale, met, target_bird and gain per direction), or None when
    no scale meets every gate."""
    ok = [r for r in rows if r["met"]]
    if not ok:
        return None
    best = max(ok, key=lambda r: (min(r["target_bird"].values()), min(r["gain"].values()), r["scale"]))
    return best["scale"]


def bench_window(model: str, scales: Sequence[float] = SCALES, seeds: Sequence[int] = (0, 1, 2),
                 out: Path = Path("docs"), doc: Optional[Path] = None, on_progress: Optional[ProgressFn] = None) -> dict:
    from ..method.inpainting import model_crop_scale, resolve_model_ref
    from .inpainter import bench_inpainter

    t0 = time.monotonic()
    rows = []
    for scale in scales:
        json_path = out / "bench" / f"inpainter-window-{_tag(scale)}.json"
        res = json.loads(json_path.read_text()) if json_path.is_file() else None
        if res is None or res.get("seeds") != list(seeds) or res.get("crop_scale") != scale or res.get("model") != model:
            res = bench_inpainter(model, seeds, doc=None, json_path=json_path, on_progress=on_progress,
                                  grid_path=out / "images" / f"micro-inpainter-grid-window-{_tag(scale)}.png",
                                  section=f"inpainter-window-{_tag(scale)}", crop_scale=scale, **RECIPE)
        g = res["gates"]["box"]
        rows.append({"scale": scale, "met": g["met"], "target_bird": g["target_bird"], "gain": g["gain"],
                     "plain": {d: m["box/plain"]["target_bird"] for d, m in res["median"].items()},
                     "background_mae": g["background_mae"], "command": res["command"], "seconds": res["seconds"],
                     "grid": f"images/micro-inpainter-grid-window-{_tag(scale)}.png"})
    folder = Path(resolve_model_ref(model))
    result = {"model": model, "seeds": list(seeds), "rows": rows, "chosen": choose(rows),
              "shipped": model_crop_scale(folder) if folder.is_dir() else None,
              "command": f"python -m ddb_core bench window --model {model} --scales {' '.join(f'{s:g}' for s in scales)}",
              "seconds": round(time.monotonic() - t0, 1)}
    if doc is not None:
        write_result(result, doc, out / "bench" / "inpainter-window.json", "inpainter-window", window_markdown(result))
    return result


def window_markdown(res: dict) -> str:
    pct = lambda v: f"{100 * v:.1f}"
    dirs = list(res["rows"][0]["target_bird"])
    lines = ["## The repaint window, chosen on val", "",
             f"Command: `{res['command']}`. For each window (the scale times the longer side of the mask's box), the quality "
             "gates of `bench inpainter` on the first 48 **val** images of each direction, medians over seeds "
             f"{', '.join(map(str, res['seeds']))}, box masks, tokens learned as the demo learns them, the window used in "
             "textual inversion and generation alike. The rule, fixed before the figures: among the windows that meet "
             "every gate, the highest lower direction's target-bird rate (ties: the larger lower gain, then the wider "
             "window).", "",
             "| window | " + " | ".join(f"target bird {d} %" for d in dirs) + " | " + " | ".join(f"plain prompt {d} %" for d in dirs)
             + " | lower gain (points) | background MAE (worst) | gates | grid |",
             "| ---: | " + " | ".join(["---:"] * (2 * len(dirs))) + " | ---: | ---: | --- | --- |"]
    for r in res["rows"]:
        lines.append(f"| {r['scale']:g} | " + " | ".join(pct(r["target_bird"][d]) for d in dirs) + " | "
                     + " | ".join(pct(r["plain"][d]) for d in dirs) + f" | {100 * min(r['gain'].values()):+.1f} | "
                     f"{max(r['background_mae'].values()):.4f} | {'met' if r['met'] else 'not met'} | "
                     f"[grid]({r['grid']}) |")
    chosen, shipped = res["chosen"], res["shipped"]
    lines += ["", f"Chosen: **{chosen:g}**." if chosen is not None else "Chosen: none (no window meets every gate).",
              f"The model folder's `inpaint.json` holds {shipped:g}" + (" (the choice)." if shipped == chosen else
                                                                       ": it is **not** the choice.")
              if shipped is not None else "The model folder has no `inpaint.json`.",
              f"- wall time {res['seconds'] / 60:.1f} min (windows measured by an earlier run are read from their JSON)"]
    return "\n".join(lines) + "\n"
