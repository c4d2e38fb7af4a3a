"""Quality gates of the demo's micro inpainting model (``ddb bench inpainter``), judged by what a person sees.

For each seed: learn one textual-inversion token per class on the micro model (``ti_size`` train images of
that class: the highest-loss ones under the demo's ERM model by default, as the paper prefers, or random
ones; the loss counted inside each image's mask by default), then for each direction i → i' inpaint the
first ``n`` class-i **val** images (in id order) inside each mask shape with the prompt of class i' — with
its token ("a photo of a <waterbird> bird") and without ("a photo of a bird") — and measure:

- *target bird*: the share of results (pasted back) in which the judges of ``bench.judges`` see a bird
  in the repainted region and call it class i' — they read a crop around the mask, never the whole
  image, and a pasted square of the other place's background is "no bird" to them;
- *background preserved*: mean absolute pixel error outside the mask, on [0, 1], before any paste-back;
- with ``oracle=True``, also the *class swap* of the earlier gates: the share that a group-balanced
  classifier of the whole image (train group labels) labels i'. It is fooled by colour and texture and is
  kept only to show the difference.

The judges are checked first on the same val images as they are (each real bird, cropped around each mask
shape, must be a target bird of its own class ≥ 97% of the time; the same scenes without their bird must
not). Figures are medians over seeds; a grid shows source / mask / result for the first 24 val images of
each direction (seed 0, learned token, the demo's mask shape), not picked.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..project.errors import ConfigError, ProjectError
from ..project.progress import ProgressFn
from .eye_check import grid_items, require_new_folder, write_set
from .judges import mask_of

DEFAULT_MODEL = "data/models/micro-sd-inpainting"
GRID = Path("docs/images/micro-inpainter-grid.png")
GATES = {"target_bird": 0.80, "gain": 0.20, "background_mae": 0.04}
DEFAULT_SHAPES = ("object+8px", "box")


def _project(workdir: str, data_seed: int, on_progress):
    from ..api import create_project
    from ..demo.data import DemoDataConfig
    from ..project.store import Project

    root = Path(workdir) / f"calibration-seed{data_seed}"
    if Project.exists(root):
        return Project.open(root)
    return create_project(root, "demo", demo=DemoDataConfig(seed=data_seed), on_progress=on_progress)[0]


def _oracle(project, data_seed: int, on_progress, device: str = "auto"):
    from .calibration import _train_or_reuse
    from ..demo.pipeline import DEMO_ERM
    from ..classifiers.models import load_classifier
    from ..classifiers.training import stored_model

    cfg = replace(DEMO_ERM, seed=data_seed, sampler="group_balanced")  # the calibration's oracle, reused
    _train_or_reuse(project, "oracle", cfg, on_progress)
    m = stored_model(project, "oracle", cfg)
    model, _a, _n = load_classifier(project.project_path(m["path"]), m["arch"], m["num_classes"], device=device,
                                    what="benchmark judge")
    return model, m


def _inversion_rows(project, source: str, size: int, seed: int, on_progress) -> dict[int, list[dict]]:
    """Class -> the train rows textual inversion learns from: ``high_loss`` (the demo's ERM model, trained here
    once, with no group labels) or ``random`` (seeded)."""
    from ..demo.pipeline import DEMO_ERM
    from ..method.selection import SelectionConfig, inversion_rows

    if source == "high_loss":
        from ..classifiers.training import stored_model, train_classifier

        # the demo's own ERM (as the app's demo project trains it): its high-loss images are the ones the app's
        # tokens learn from; another active model would measure tokens the demo never learns
        demo_erm = stored_model(project, "erm", DEMO_ERM)
        if demo_erm is None or demo_erm["id"] != project.active_erm_id:
            train_classifier(project, DEMO_ERM, role="erm", make_active=True, on_progress=on_progress)
    out = {}
    cfg = SelectionConfig(k=size, ti_size=size, ti_source=source, seed=seed)
    for c in range(len(project.class_names)):
        cls = list(project.db.query("select id, path, label, attr, mask_path from samples where split = 'train' and "
                                    "label = ? order by id", [c]))
        if source == "high_loss":
            from ..method.selection import class_rows_by_loss

            cls = class_rows_by_loss(project, c)
        out[c] = [project.db["samples"].get(r["id"]) for r in inversion_rows(project, c, cls, cfg)]
    return out


def _classify(model, images: Sequence[np.ndarray], image_size: int = 64) -> np.ndarray:
    """Softmax of ``model`` on ``images`` through the classifier view (the demo's oracle takes 64 px), on the
    device the model was placed on."""
    import torch

    from ..data.imaging import classifier_batch

    device = next(model.parameters()).device
    with torch.no_grad():
        return model(classifier_batch(images, image_size).to(device)).softmax(1).cpu().numpy()


def bench_inpainter(model: str = DEFAULT_MODEL, seeds: Sequence[int] = (0, 1, 2), n: int = 48, ti_size: int = 30,
                    ti_steps: int = 400, steps: int = 25, guidance: float = 7.5, workdir: str = "projects/bench",
                    data_seed: int = 0, doc: Optional[Path] = None, json_path: Optional[Path] = None,
                    grid_path: Optional[Path] = GRID, on_progress: Optional[ProgressFn] = None,
                    shapes: Sequence[str] = DEFAULT_SHAPES, ti_source: str = "high_loss", ti_region: str = "mask",
                    ti_shape: str = "object", grid_shape: Optional[str] = None, oracle: bool = False,
                    judges_dir: Optional[str] = None, section: str = "inpainter", label: Optional[str] = None,
                    ti_repaint: Optional[str] = None, ti_object_share: float = 0.0, device: str = "auto",
                    dtype: str = "auto", crop_scale: Optional[float] = None, eye_set: Optional[Path] = None,
                    eye_sets: Optional[str] = None) -> dict:
    """``shapes``: the repaint masks measured; ``ti_shape``: the mask textual inversion counts its loss in (region
    "mask"); ``ti_repaint``: the mask the UNet is given during the inversion (None: ``ti_shape`` itself; the demo
    gives it its repaint mask, as ``ddb invert`` does); ``ti_object_share``: with ``ti_repaint``, the share of samples
    for which the UNet is given the ``ti_shape`` mask instead; ``grid_shape``: the mask of the grid (default: the demo's);
    ``eye_set``: a new folder where the grid's candidates (the first seed's) are written as a set to label by eye
    (``bench eye-check``); ``eye_sets``: a prefix, one such set per seed in ``PREFIX-seedS``."""
    from ..demo.pipeline import DemoPipelineConfig
    from ..data.imaging import load_mask, load_rgb
    from ..method.inpainting import InpaintConfig, Inpainter, crop_window, model_fingerprint
    from ..method.inversion import InversionConfig, class_token, learn_token
    from .judges import JUDGES_DIR, check_on_real_renders, load_judges

    for sh in list(shapes) + [ti_shape] + ([ti_repaint] if ti_repaint else []):
        mask_of(sh, np.zeros((4, 4), np.uint8))  # a bad shape fails before any work
    grid_shape = grid_shape or DemoPipelineConfig().mask_shape_name
    t_start = time.monotonic()
    if eye_set is not None and eye_sets is not None:
        raise ConfigError("give --eye-set (the first seed's candidates) or --eye-sets (every seed's), not both")
    eye_dirs = {seeds[0]: Path(eye_set)} if eye_set is not None else \
        {s: Path(f"{eye_sets}-seed{s}") for s in seeds} if eye_sets is not None else {}
    for folder in eye_dirs.values():
        require_new_folder(folder)  # before the work: a set is never written over
    judges = load_judges(judges_dir or JUDGES_DIR)
    project = _project(workdir, data_seed, on_progress)
    judge_check = check_on_real_renders(judges, project.root / "dataset", "val", shapes)
    oracle_model, oracle_row = _oracle(project, data_seed, on_progress, device) if oracle else (None, None)
    names = project.class_names
    # the gates are measured on val: the choices they inform (the model, its mask shape, the token's recipe) are made on it
    val = list(project.db.query("select id, path, label, attr, mask_path from samples where split = 'val' order by id"))
    if any(r["mask_path"] is None for r in val):
        raise ProjectError(f"{project.root}: the gates need the demo's ground-truth object masks")
    per_seed, grid_rows = [], []
    eye_items: dict[int, list] = {s: [] for s in eye_dirs}
    cfg = InpaintConfig(steps=steps, guidance=guidance, batch_size=16, paste_back=False)
    for seed in seeds:
        t0 = time.monotonic()
        inp = Inpainter.load(model, device=device, dtype=dtype)
        if crop_scale is not None:
            inp.crop_scale = crop_scale
        tokens = {}
        ti_rows = _inversion_rows(project, ti_source, ti_size, seed, on_progress)
        for c in range(len(names)):
            ims = [load_rgb(project.dataset_path(r["path"])) for r in ti_rows[c]]
            masks = [mask_of(ti_shape, load_mask(project.dataset_path(r["mask_path"]))) for r in ti_rows[c]] \
                if ti_region == "mask" or inp.crop_scale else None
            repaint = [mask_of(ti_repaint, load_mask(project.dataset_path(r["mask_path"]))) for r in ti_rows[c]] \
                if ti_region == "mask" and ti_repaint else None
            res = learn_token(inp.pipe, ims, class_token(names[c]), "bird", init_word="bird",
                              cfg=InversionConfig(steps=ti_steps, seed=seed, region=ti_region,
                                                  object_mask_share=ti_object_share if repaint else 0.0), on_progress=on_progress,
                              masks=masks, crop_scale=inp.crop_scale, repaint_masks=repaint)
            inp.tokens[res.token] = res.embedding
            tokens[c] = res.token
        seed_out = {"seed": seed, "ti_seconds": round(time.monotonic() - t0, 1), "directions": {}}
        for i in range(len(names)):
            for j in range(len(names)):
                if i == j:
                    continue
                pool = [r for r in val if r["label"] == i][:n]
                srcs = [load_rgb(project.dataset_path(r["path"])) for r in pool]
                obj = [load_mask(project.dataset_path(r["mask_path"])) for r in pool]
                d = {}
                for kind in shapes:
                    masks = [mask_of(kind, m) for m in obj]
                    for prompt_kind, prompt in (("token", f"a photo of a {tokens[j]} bird"), ("plain", "a photo of a bird")):
                        outs = []
                        for b in range(0, len(srcs), cfg.batch_size):
                            sl = slice(b, b + cfg.batch_size)
                            outs += inp.inpaint(srcs[sl], masks[sl], [prompt] * len(srcs[sl]),
                                                [seed * 100_003 + int(r["id"]) for r in pool[sl]], cfg)
                        outside = [np.abs(o.astype(float) - s.astype(float))[m < 128].mean() / 255 for o, s, m in
                                   zip(outs, srcs, masks)]
                        # a model that repaints a window around the mask leaves the rest untouched: its error outside
                        # the mask counted inside the window only (the whole image's figure would dilute it)
                        in_window = outside
                        if inp.crop_scale:
                            in_window = []
                            for o, s_, m in zip(outs, srcs, masks):
                                t, l, h, w = crop_window(m, inp.crop_scale)
                                err = np.abs(o.astype(float) - s_.astype(float))[t:t + h, l:l + w]
                                in_window.append(err[m[t:t + h, l:l + w] < 128].mean() / 255)
                        pasted = [np.where((m >= 128)[..., None], o, s) for o, s, m in zip(outs, srcs, masks)]
                        v = judges.judge(pasted, masks, [j] * len(pasted))
                        attrs = np.array([r["attr"] for r in pool])
                        entry = {
                            "target_bird": float(v["target_bird"].mean()), "bird": float(v["bird"].mean()),
                            "which_is_target": float((v["which"][v["bird"]] == j).mean()) if v["bird"].any() else 0.0,
                            "background_mae": float(np.mean(outside)), "n": len(srcs),
                            "background_mae_window": float(np.mean(in_window)),
                            "mask_area": float(np.mean([(m >= 128).mean() for m in masks])),
                            # the same share per background of the source image (its group's attribute)
                            "by_background": {project.attr_names[a]: {"target_bird": float(v["target_bird"][attrs == a].mean()),
                                                                      "n": int((attrs == a).sum())}
                                              for a in sorted(set(attrs.tolist()))}}
                        if oracle_model is not None:
                            entry["oracle_swap"] = float((_classify(oracle_model, pasted).argmax(1) == j).mean())
                        d[f"{kind}/{prompt_kind}"] = entry
                        if prompt_kind == "token" and kind == grid_shape:
                            if seed in eye_dirs:
                                eye_items[seed] += grid_items(len(eye_items[seed]) + 1, i, j, pasted, masks,
                                                              [project.attr_names[a] for a in attrs])
                            if seed == seeds[0]:
                                grid_rows.append((f"{names[i]} → {names[j]}, {kind} mask, first {min(24, len(srcs))} "
                                                  "val images in id order", srcs[:24], masks[:24], pasted[:24],
                                                  v["target_bird"][:24]))
                seed_out["directions"][f"{i}->{j}"] = d
        seed_out["seconds"] = round(time.monotonic() - t0, 1)
        per_seed.append(seed_out)
    keys = list(per_seed[0]["directions"]["0->1"].keys())
    metrics = ["target_bird", "bird", "which_is_target", "background_mae", "background_mae_window", "mask_area"] + (["oracle_swap"] if oracle else [])
    median = {}
    for dname in per_seed[0]["directions"]:
        median[dname] = {k: {m: statistics.median(s["directions"][dname][k][m] for s in per_seed) for m in metrics}
                         for k in keys}
        for k in keys:
            backs = sorted({b for s in per_seed for b in s["directions"][dname][k]["by_background"]})
            median[dname][k]["by_background"] = {
                b: statistics.median(s["directions"][dname][k]["by_background"][b]["target_bird"] for s in per_seed
                                     if b in s["directions"][dname][k]["by_background"]) for b in backs}
    gates = {}
    for kind in mask_kinds(keys):
        rate = {dname: median[dname][f"{kind}/token"]["target_bird"] for dname in median}
        gain = {dname: median[dname][f"{kind}/token"]["target_bird"] - median[dname][f"{kind}/plain"]["target_bird"]
                for dname in median}
        mae = {dname: median[dname][f"{kind}/token"]["background_mae_window"] for dname in median}
        gates[kind] = {"target_bird_ge_80": all(v >= GATES["target_bird"] for v in rate.values()),
                       "gain_ge_20_points": all(v >= GATES["gain"] for v in gain.values()),
                       "background_mae_le_004": all(v <= GATES["background_mae"] for v in mae.values()),
                       "target_bird": rate, "gain": gain, "background_mae": mae}
        gates[kind]["met"] = gates[kind]["target_bird_ge_80"] and gates[kind]["gain_ge_20_points"] and \
            gates[kind]["background_mae_le_004"]
    erm = project.active_erm() if ti_source == "high_loss" else None
    cmd = (f"python -m ddb_core bench inpainter --model {model} --seeds {' '.join(map(str, seeds))} --shapes {' '.join(shapes)}"
           f" --ti-source {ti_source} --ti-region {ti_region}" + (f" --ti-shape {ti_shape}" if ti_region == "mask" else "")
           + (f" --ti-repaint {ti_repaint}" if ti_region == "mask" and ti_repaint else "")
           + (f" --ti-object-share {ti_object_share:g}" if ti_region == "mask" and ti_repaint and ti_object_share else "")
           + "".join(f" --{flag} {value}" for flag, value, default in (
               ("n", n, 48), ("ti-size", ti_size, 30), ("ti-steps", ti_steps, 400), ("steps", steps, 25),
               ("guidance", guidance, 7.5), ("dtype", dtype, "auto")) if value != default)
           + (f" --crop-scale {crop_scale:g}" if crop_scale is not None else "")
           + (" --oracle" if oracle else "") + (f" --section {section}" if section != "inpainter" else ""))
    result = {"model": model, "seeds": list(seeds), "n_per_direction": n, "ti_size": ti_size, "ti_steps": ti_steps,
              "ti_source": ti_source, "ti_region": ti_region, "ti_shape": ti_shape, "ti_repaint": ti_repaint,
              "ti_object_share": ti_object_share if ti_repaint else 0.0, "shapes": list(shapes),
              "grid_shape": grid_shape, "inpaint": asdict(cfg), "crop_scale": inp.crop_scale, "judge_check": judge_check, "gate_values": GATES,
              "oracle_model": ({"path": oracle_row["path"], "test_wga": oracle_row["metrics"]["test"]["worst_group_acc"]}
                               if oracle_row else None),
              "per_seed": per_seed, "median": median, "gates": gates, "seconds": round(time.monotonic() - t_start, 1),
              "command": cmd, "model_sha256": model_fingerprint(model), "section": section, "label": label,
              "device": _device_name(inp.pipe.device) + (f", {dtype}" if dtype != "auto" else ""),
              "erm": {k: erm["config"][k] for k in ("arch", "epochs", "seed")} if erm else None}
    if grid_path and grid_rows:
        _grid(grid_rows, grid_path)
        result["grid"] = str(grid_path)
    for s, folder in eye_dirs.items():
        write_set(folder, eye_items[s], {
            "made_from": f"the grid's candidates of `{cmd}` (the first 24 val images of each direction, seed {s}, "
                         f"{grid_shape} masks, the learned token; model {model}, weights sha256 "
                         f"{(result['model_sha256'] or '')[:12]}…)"})
    if eye_dirs:
        result["eye_sets"] = {str(s): str(f) for s, f in eye_dirs.items()}
    from .docs import write_result

    write_result(result, doc, json_path, section, inpainter_markdown(result))
    return result


def _grid(rows, path: Path, scale: int = 2, per_line: int = 12) -> None:
    """source / mask / result rows for each direction, ``per_line`` candidates a line, every image at its size ×
    ``scale``; a green bar under a result the judges call a target bird, a red one under the others."""
    from PIL import Image, ImageDraw

    cell, gap, title_h, bar = 64 * scale, 4, 22, 5
    blocks = []  # (title or None, srcs, masks, outs, verdict) of at most per_line candidates
    for title, srcs, masks, outs, verdict in rows:
        for b in range(0, len(srcs), per_line):
            blocks.append((title if b == 0 else None, srcs[b:b + per_line], masks[b:b + per_line],
                           outs[b:b + per_line], verdict[b:b + per_line]))
    block_h = title_h + 3 * (cell + gap) + bar + gap
    width = min(per_line, max(len(b[1]) for b in blocks)) * (cell + gap) + gap
    sheet = Image.new("RGB", (width, len(blocks) * block_h + 24), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 4), "source / mask / result with the learned token; bar: green = the judges see a target bird, "
                        "red = not", fill="black")
    for r, (title, srcs, masks, outs, verdict) in enumerate(blocks):
        top = 24 + r * block_h
        if title:
            draw.text((gap, top + 4), title.replace("→", "->"), fill="black")
        for k in range(len(srcs)):
            x = gap + k * (cell + gap)
            for q, img in enumerate((srcs[k], np.repeat(masks[k][..., None], 3, 2), outs[k])):
                tile = Image.fromarray(np.ascontiguousarray(img)).resize((cell, cell), Image.NEAREST)
                sheet.paste(tile, (x, top + title_h + q * (cell + gap)))
            y = top + title_h + 3 * (cell + gap)
            draw.rectangle([x, y, x + cell - 1, y + bar - 1], fill=(40, 160, 60) if verdict[k] else (200, 50, 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def mask_kinds(keys) -> list[str]:
    """The mask kinds of a result's keys ("object", "object+4px", …, "box"), in their order."""
    return list(dict.fromkeys(k.split("/")[0] for k in keys))


def _device_name(dev) -> str:
    import torch

    dev = torch.device(dev)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type


def _ti_images(res: dict) -> str:
    n, src = res["ti_size"], res["ti_source"]
    if src == "val_minority":
        return f"{n} val images per class of its minority group (val group labels)"
    erm = res.get("erm")
    by = f" under the demo's ERM ({erm['arch']}, {erm['epochs']} epochs)" if erm else ""
    return f"{n} {src.replace('_', '-')} train images per class{by}"


def result_to_docs(json_file: Path, doc: Path, label: Optional[str] = None) -> dict:
    """Write the docs section of a result measured elsewhere (``--out-dir``): its JSON under docs/bench, its grid
    under docs/images, its section of ``doc``; the figures are the stored ones, untouched."""
    import shutil

    from .docs import write_result

    res = json.loads(Path(json_file).read_text())
    if label:  # the section's title: presentation only, the figures stay as stored
        res["label"] = label
    section = res["section"]
    suffix = "" if section == "inpainter" else "-" + section.removeprefix("inpainter-")
    grid = Path(json_file).parent / Path(res.get("grid") or "none").name
    dst = Path(f"docs/images/micro-inpainter-grid{suffix}.png")
    if res.get("grid") and Path(res["grid"]).resolve() == dst.resolve() and dst.is_file():
        res["grid"] = str(dst)  # a result of this repository's docs: its grid is in place
    elif res.get("grid") and grid.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(grid, dst)
        res["grid"] = str(dst)
    else:
        res.pop("grid", None)
    write_result(res, doc, Path(f"docs/bench/{section}.json"), section, inpainter_markdown(res))
    return res


def _doc_link(path: str) -> str:
    p = Path(path)
    return p.relative_to("docs").as_posix() if p.parts[:1] == ("docs",) else p.as_posix()


def _p(x: float) -> str:
    return f"{100 * x:.1f}"


def inpainter_markdown(res: dict) -> str:
    jc = res["judge_check"]
    lines = [f"## Inpainting quality gates: {res.get('label') or res['model']}", "",
             f"Command: `{res['command']}` (weights sha256 {res.get('model_sha256') or '—'}…; the first "
             f"{res['n_per_direction']} **val** images of each direction in id order; textual inversion on "
             + _ti_images(res) + f", {res['ti_steps']} steps, "
             + (f"loss inside the {res['ti_shape']} mask" + (f", the UNet given the {res['ti_repaint']} mask"
                                                               if res.get("ti_repaint") else "")
                + (f" ({100 * res['ti_object_share']:.0f}% of samples: the {res['ti_shape']} mask)"
                   if res.get("ti_object_share") else "")
                if res["ti_region"] == "mask" else "loss over the whole image")
             + f"; {res['inpaint']['steps']} DDIM steps, guidance {res['inpaint']['guidance']}"
             + (f"; run on {res['device']}" if res.get("device") else "") + "). Medians over seeds "
             f"{', '.join(map(str, res['seeds']))}.", "",
             "**Target bird**: the judges of `ddb bench judges` (trained only on their own renders, data seeds no "
             "benchmark uses) look at a crop around the mask and see a bird there, of the target class. They are "
             "checked first on the real val renders: "
             + "; ".join(f"{shape} crops: real birds are target birds of their own class "
                         + ", ".join(f"{_p(v)}%" for v in sh["target_bird"].values())
                         + f", the same scenes without their bird are called a bird {_p(sh['background_called_bird'])}%"
                         for shape, sh in jc["shapes"].items())
             + f" (gate ≥ 97%: **{'met' if jc['gate_met'] else 'not met'}**).", "",
             "| direction | mask | mask area % | target bird with token % | target bird, plain prompt % | gain (points) "
             "| a bird at all, token % | background MAE outside mask (in its window) |" + (" whole-image oracle swap, token % |" if res.get("oracle_model") else ""),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if res.get("oracle_model") else "")]
    for d, m in res["median"].items():
        for kind in mask_kinds(m):
            t, p = m[f"{kind}/token"], m[f"{kind}/plain"]
            lines.append(f"| {d} | {kind} | {_p(t['mask_area'])} | {_p(t['target_bird'])} | {_p(p['target_bird'])} | "
                         f"{100 * (t['target_bird'] - p['target_bird']):+.1f} | {_p(t['bird'])} | {t['background_mae']:.4f}"
                         + (f" ({t['background_mae_window']:.4f})" if "background_mae_window" in t and res.get("crop_scale") else "")
                         + " |"
                         + (f" {_p(t['oracle_swap'])} |" if "oracle_swap" in t else ""))
    lines.append("")
    for kind, g in res["gates"].items():
        lines.append(f"- {kind} masks: target bird ≥ 80% in both directions: **{'met' if g['target_bird_ge_80'] else 'not met'}**; "
                     f"≥ 20 points above the plain prompt: **{'met' if g['gain_ge_20_points'] else 'not met'}**; "
                     f"background error ≤ 0.04: **{'met' if g['background_mae_le_004'] else 'not met'}**")
    backs = [(d, kind, m[f"{kind}/token"].get("by_background", {})) for d, m in res["median"].items() for kind in mask_kinds(m)]
    if any(b for _d, _k, b in backs):
        lines.append("- target bird with token by the source image's background (median over seeds): " + "; ".join(
            f"{d} {kind}: " + ", ".join(f"{name} {_p(v)}" for name, v in b.items()) for d, kind, b in backs if b))
    lines.append("- per seed (target bird with token, " + " / ".join(res["shapes"]) + "): " + "; ".join(
        f"seed {s['seed']}: " + ", ".join(f"{d} " + "/".join(_p(v[f'{k}/token']['target_bird']) for k in res["shapes"])
                                         for d, v in s["directions"].items()) for s in res["per_seed"]))
    lines.append(f"- wall time: {res['seconds'] / 60:.1f} min in all")
    if res.get("grid"):
        lines.append(f"\nThe first 24 val images of each direction, {res['grid_shape']} masks, seed {res['seeds'][0]}, not "
                     f"picked:\n\n![source / mask / result]({_doc_link(res['grid'])})")
    return "\n".join(lines) + "\n"


def _own_vae(model_dir: Path, vae_from: dict) -> bool:
    """Whether the VAE a run took from another folder is the very file this folder holds (same folder, same bytes)."""
    from ..demo.micro_weights import vae_sha256
    from ..method.inpainting import resolve_model_ref

    same_folder = Path(resolve_model_ref(vae_from["folder"])).resolve() == model_dir.resolve()
    return same_folder and vae_sha256(model_dir) == vae_from["vae_sha256"]


def _own_unet(model_dir: Path, info: dict) -> bool:
    """Whether a run took its UNet from the very folder that now holds it (the model it replaced there)."""
    from ..method.inpainting import resolve_model_ref

    return bool(info.get("unet_from")) and \
        Path(resolve_model_ref(info["unet_from"]["folder"])).resolve() == model_dir.resolve()


def _borrowed_unet(model_dir: Path, info: dict) -> str:
    """The wall-time line's note for a run that took its UNet, text encoder and VAE encoder from another folder."""
    from ..demo.micro_weights import unet_sha256

    src, cfg = info["unet_from"], info["config"]
    own = _own_unet(model_dir, info)
    unchanged = unet_sha256(model_dir) == src["weights_sha256"]
    earlier = f" ({src['seconds_total'] / 60:.1f} min)" if src.get("seconds_total") else ""
    return (f"; the decoder phase alone: its VAE encoder, UNet and text encoder were not trained in this run but taken "
            f"from `{src['folder']}`" + (" as it was before this model replaced it (the folder's git history; made "
                                         f"with `--vae-from {cfg['vae_from']} --unet-from {cfg['unet_from']}`)"
                                         if own else "")
            + f", trained by the same recipe's first two phases{earlier}; the UNet and text encoder files "
            + (f"are shipped here unchanged (sha256 {src['weights_sha256'][:12]}…)" if unchanged
               else f"were sha256 {src['weights_sha256'][:12]}… there"))


def write_model_card(model_dir: Path, gates: Optional[dict] = None) -> Path:
    """``README.md`` of a micro model folder: how it was trained (from its ``training.json``) and its gates."""
    from ..demo.micro_train import PRESETS, MicroTrainConfig
    from ..method.inpainting import model_crop_scale, model_fingerprint
    from .eye_check import blind_counts

    info = json.loads((model_dir / "training.json").read_text())
    cfg = info["config"]
    m = cfg["model"]
    size = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
    latent = m["sample_size"] // 2 ** (len(m["vae_channels"]) - 1)
    on_corpus = info.get("corpus") is not None
    shares = cfg.get("mask_shares", (0.3, 0.25, 0.2))  # models trained before the option used these
    lines = ["# micro-sd-inpainting", "",
             "A small Stable Diffusion inpainting model in the diffusers format, trained by this project on images its "
             "own renderer made. It is the default inpainting model of the demo project and loads exactly like "
             "`stabilityai/stable-diffusion-2-inpainting`:", "",
             "```python", "import torch", "from diffusers import StableDiffusionInpaintPipeline",
             "pipe = StableDiffusionInpaintPipeline.from_pretrained(\"data/models/micro-sd-inpainting\")",
             "pipe.to(\"cuda\" if torch.cuda.is_available() else \"cpu\")  # the project loads it on the device you choose",
             "```", "", "Its `inpaint.json` asks for a window around the mask: the project's `Inpainter` cuts it (see "
             "`ddb_core/method/inpainting.py`); a plain pipeline call repaints the whole image instead.", "",
             "## Training", ""]
    if on_corpus:
        wide = tuple(m["unet_channels"]) == MicroTrainConfig.crop_wide().model.unet_channels
        preset = ("crop-unit" if cfg.get("unit_latents") else "crop-wide" if wide else "crop") if cfg.get("crop_scale") \
            else "corpus"
        if preset == "crop-unit" and cfg.get("decoder_gan_steps"):
            preset = "crop-unit-gan"
        base = PRESETS[preset]()
        flags = "".join(f" --{k.replace('_', '-')} {cfg[k]}" for k in ("corpus", "vae_steps", "unet_steps", "seed")
                        if cfg.get(k) != getattr(base, k))
        if cfg.get("vae_from") and not _own_unet(model_dir, info):  # else: the whole recipe; the note says how
            flags += f" --vae-from {cfg['vae_from']}"
        if cfg.get("unet_from") and not _own_unet(model_dir, info):
            flags += f" --unet-from {cfg['unet_from']}"
        lines += [
            f"- command: `python -m ddb_core train-micro-inpainter --preset {preset} --out projects/micro/model{flags}` "
            "(resumable: run it again after a stop)",
            f"- data: {info['corpus']['images']} scenes of `ddb_core.demo.corpus`: both kinds of bird on both places in "
            "equal numbers, data seeds from 1,000,000 up, which no benchmark uses — the model has seen no train, val "
            "or test image of any demo benchmark",
            "- captions as a web corpus would have them: the place, the side of the image, and in half of them the bird's "
            "shape in plain words (\"a long necked bird\", \"a round bird\"); never a class name, so the class comes "
            "from textual inversion",
        ]
        if cfg.get("crop_scale"):
            used = model_crop_scale(model_dir) or cfg["crop_scale"]
            lines.append(f"- the model was trained on **windows around the bird**, {cfg['crop_scale']:g} times the longer "
                         f"side of its box, each resized to {m['sample_size']} px; it repaints a window of "
                         f"{used:g} times the mask's box (its `inpaint.json`; generation and textual inversion cut the "
                         "same windows)" + ("" if used == cfg["crop_scale"] else
                                            ", chosen on val by `ddb bench window` (docs/benchmarks.md, \"The repaint "
                                            "window\"): a window closer to the mask keeps more of the source's pixels "
                                            "per latent pixel"))
    else:
        data_cfg = {}
        ds = Path(info["dataset"]) / "dataset.json" if info.get("dataset") else None
        if ds is not None and ds.is_file():
            data_cfg = json.loads(ds.read_text()).get("config", {})
        lines += [
            f"- command: `python -m ddb_core demo-data --out projects/micro/dataset --seed {data_cfg.get('seed', 0)}` then "
            "`python -m ddb_core train-micro-inpainter --preset v1 --data projects/micro/dataset --out projects/micro/model "
            f"--vae-steps {cfg['vae_steps']} --unet-steps {cfg['unet_steps']} --seed {cfg['seed']}`",
            f"- data: demo benchmark seed {data_cfg.get('seed', 0)}, train split ({info['train_images']} images at "
            f"{m['sample_size']} px) with their ground-truth object masks; class-agnostic captions"]
    lines += [
        f"- masks: object silhouette grown by 0-8 px {shares[0]:.0%}, the bird's box with a margin {shares[1]:.0%}, "
        f"a random box {shares[2]:.0%}, the whole image {1 - sum(shares):.0%}",
        f"- steps: VAE {cfg['vae_steps']} (batch {cfg['vae_batch_size']}, lr {cfg['vae_lr']}), UNet + text encoder "
        f"{cfg['unet_steps']} (batch {cfg['batch_size']}, peak lr {cfg['unet_lr']}, cosine"
        + (f", restarted at UNet step {cfg['unet_restart_steps']}" if cfg.get("unet_restart_steps")
           and cfg["unet_restart_steps"] < cfg["unet_steps"] else "")
        + (f", min-SNR-γ {cfg['snr_gamma']:g}" if cfg.get("snr_gamma") else "") + ")"
        + (f", then the VAE's decoder again {cfg['decoder_gan_steps']} (batch {cfg['vae_batch_size']}, lr "
           f"{cfg['decoder_lr']:g}, Adam β 0.5 / 0.9; L1 plus a patch discriminator's hinge loss with the adaptive "
           f"weight × {cfg['decoder_gan_weight']:g}, as latent diffusion trains its autoencoder; the encoder frozen, so "
           "the latents and the UNet stay; docs/decisions/micro-decoder-gan.md)" if cfg.get("decoder_gan_steps") else "")
        + f"; seed {cfg['seed']}",
        *([f"- latents scaled by {info['latent_scale']:g}, one over their standard deviation over the corpus (unit "
            "variance, as Stable Diffusion scales its own VAE's latents), measured once after the VAE phase"]
          if cfg.get("unit_latents") else []),
        f"- sizes: VAE blocks {m['vae_channels']} (latents {latent} px), UNet blocks {m['unet_channels']}, CLIP text "
        f"encoder width {m['text_hidden']} × {m['text_layers']} layers; {size / 1e6:.1f} MB on disk",
        f"- wall time: {info.get('seconds_total', info['seconds_this_session']) / 60:.1f} min on "
        f"{info.get('machine', 'the development machine (2 CPU cores)')} (device {info.get('device', 'cpu')})"
        + (f"; the UNet phase alone: its VAE was not trained in this run but taken from `{info['vae_from']['folder']}` "
           f"(VAE weights sha256 {info['vae_from']['vae_sha256'][:12]}…), trained by the same VAE recipe"
           + (" — the model this one replaced in this folder; the VAE file is shipped here unchanged, so the command "
              "above gives the same VAE" if _own_vae(model_dir, info["vae_from"]) else "")
           if info.get("vae_from") and not info.get("unet_from") else "")
        + (_borrowed_unet(model_dir, info) if info.get("unet_from") else ""),
        f"- final losses: {', '.join(str(e['loss']) for e in info['final_losses'])}", ""]
    if gates:
        lines += ["## Quality", "", f"Measured with `{gates['command']}` (**val** images; medians over seeds "
                  f"{', '.join(map(str, gates['seeds']))}; details in docs/benchmarks.md). A target bird: the judges of "
                  "`ddb bench judges` see a bird of the target class in the repainted region.", ""]
        for d, v in gates["median"].items():
            for kind in mask_kinds(v):
                t, p = v[f"{kind}/token"], v[f"{kind}/plain"]
                err = t.get("background_mae_window", t["background_mae"]) if gates.get("crop_scale") else t["background_mae"]
                lines.append(f"- {d}, {kind} masks: target bird {100 * t['target_bird']:.1f}% with the learned token vs "
                             f"{100 * p['target_bird']:.1f}% with the plain prompt; background error outside the mask "
                             f"{err:.4f} (mean absolute, [0, 1] scale, before paste-back"
                             + (", inside the repainted window" if gates.get("crop_scale") else "") + ")")
        lines += ["", "Gates (target bird ≥ 80% in both directions, ≥ 20 points above the plain prompt, background error "
                  "≤ 0.04): " + "; ".join(f"{k} masks {'met' if g['met'] else 'not met'}" for k, g in gates["gates"].items())
                  + "."]
        eyes = blind_counts(model_fingerprint(str(model_dir)) or "")
        if eyes:
            seeds = ", ".join(str(x) for x in eyes["seeds"] if x is not None) or "0"
            lines += ["", "By eye, labelled blind beside another model's candidates (" + ", ".join(
                      f"`{x}`" for x in eyes["sets"]) + f"; the first 24 val candidates of each direction, generation "
                      f"seed{'s' if len(eyes['sets']) > 1 else ''} {seeds}, box masks): " + "; ".join(
                          f"{d} {b} of {n} hold a bird a person calls a bird of the target class"
                          for d, (b, n) in eyes["birds"].items()) + ". Read the judges' figures beside these: on pale "
                      "ghosts and blobs they call more candidates target birds than the eyes do (docs/benchmarks.md, "
                      "\"Which judges agree with the eyes?\")."]
        if gates.get("grid"):
            lines += ["", f"Look at the grid (`{gates['grid']}`: source, mask and result of the first 24 val images of each "
                      "direction, not picked) before trusting a figure: the judges are a measurement, not an eye."]
    lines += ["", "## Limits", "",
              "Trained on one synthetic benchmark's renderer at 64 px, for the offline demo only. For real data use "
              "SD2-inpainting or another diffusers inpainting model by name."]
    path = model_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
