"""Do the judges agree with a person's eyes? (``ddb bench eye-check``)

A labelled set is a folder of generated candidates, each stored with its repaint mask, and ``labels.csv``: for each
one, what a person saw in the repainted region when looking at it — ``bird`` (a bird of the target class, however
blurred), ``unclear`` (a blob or a ghost that might be one) or ``no`` (no bird, or a bird of the other class). The
images are copied into the set, so its labels keep their meaning when the project that made them is generated again.

``ddb bench eye-check --export PROJECT`` writes such a folder from a project's candidates with an empty ``eye``
column and contact sheets of the judges' crops to label from (the judges' verdicts are not shown on them);
``ddb bench eye-check`` then counts, per direction, what the eyes saw and what the judges call a target bird among
each kind. The judges' figures can be trusted as far as they agree with the eyes here.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from ..project.errors import ConfigError

EYE_SETS = Path("data/eye-labels")
LABELS = ("bird", "unclear", "no")
FIELDS = ["file", "mask", "candidate", "source_label", "target_label", "eye"]


def export_for_labels(project, out: Path, method: str = "ddb", per_sheet: int = 40) -> Path:
    """Copy ``project``'s candidates (image and mask) into ``out`` with ``labels.csv`` (``eye`` empty) and contact
    sheets of the judges' crops, numbered by candidate id, to label from."""
    from ..data.imaging import load_mask, load_rgb

    require_new_folder(out)
    rows = list(project.db.query(
        "select c.id, c.source_label, c.target_label, c.path, m.path as mask_path from candidates c "
        "join masks m on m.id = c.mask_id where c.method = ? order by c.id", [method]))
    if not rows:
        raise ConfigError(f"{project.root}: no {method} candidates to label")
    items = [{"candidate": r["id"], "source_label": r["source_label"], "target_label": r["target_label"],
              "image": load_rgb(project.project_path(r["path"])), "mask": load_mask(project.project_path(r["mask_path"]))}
             for r in rows]
    return write_set(out, items, {"project": str(project.root), "method": method}, per_sheet)


def require_new_folder(out: Path) -> None:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty: choose a new folder (labels are never written over)")


def grid_items(first: int, source_label: int, target_label: int, images, masks, backgrounds, n: int = 24) -> list[dict]:
    """The first ``n`` candidates of one direction of a grid as items of a set (``write_set``), numbered on from
    ``first``, each with its source's background."""
    return [{"candidate": first + k, "source_label": source_label, "target_label": target_label, "image": im,
             "mask": m, "background": b} for k, (im, m, b) in enumerate(zip(images[:n], masks[:n], backgrounds[:n]))]


def write_set(out: Path, items: list[dict], meta: dict, per_sheet: int = 40) -> Path:
    """A set to label in ``out``: each item's ``image`` and repaint ``mask`` (arrays) saved under its ``candidate``
    number, ``labels.csv`` with its ``source_label`` and ``target_label`` and an empty ``eye`` column, contact sheets
    of the judges' crops (no verdict shown), and ``set.json`` (``meta`` and the count)."""
    from PIL import Image, ImageDraw

    from .judges import crop_box

    out = Path(out)
    require_new_folder(out)
    numbers = [r["candidate"] for r in items]
    if len(set(numbers)) != len(numbers):
        raise ConfigError(f"{out}: two items share a candidate number ({sorted(n for n in set(numbers) if numbers.count(n) > 1)[:5]}); "
                          "each image of a set needs its own")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    labels, crops = [], []
    for r in items:
        name = f"{r['candidate']}.png"
        Image.fromarray(r["image"]).save(out / "images" / name)
        Image.fromarray(r["mask"]).save(out / "masks" / name)
        labels.append({"file": f"images/{name}", "mask": f"masks/{name}", "candidate": r["candidate"],
                       "source_label": r["source_label"], "target_label": r["target_label"], "eye": "",
                       **({"background": r["background"]} if "background" in r else {})})
        t, l, h, w = crop_box(r["mask"])
        crops.append((r, r["image"][t:t + h, l:l + w]))
    with open(out / "labels.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, FIELDS + (["background"] if any("background" in r for r in items) else []))
        wr.writeheader()
        wr.writerows(labels)
    side = 128
    for s in range(0, len(crops), per_sheet):
        part = crops[s:s + per_sheet]
        cols = 10
        sheet = Image.new("RGB", (cols * (side + 6), -(-len(part) // cols) * (side + 20)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (r, crop) in enumerate(part):
            x, y = (k % cols) * (side + 6), (k // cols) * (side + 20)
            sheet.paste(Image.fromarray(crop).resize((side, side), Image.BICUBIC), (x, y + 16))
            draw.text((x + 2, y + 2), f"#{r['candidate']}  {r['source_label']}->{r['target_label']}", fill="black")
        sheet.save(out / f"sheet-{s // per_sheet + 1}.png")
    (out / "set.json").write_text(json.dumps({**meta, "n": len(items)}, indent=2))
    return out


# -- Blind labelling: several sets mixed in one shuffled order, the set of each image not shown ------------------------

def blind_sheets(sets: list[Path], out: Path, seed: int = 0, per_sheet: int = 24, scale: int = 4) -> Path:
    """Mix the candidates of ``sets`` (unlabelled sets, as ``write_set`` makes them) in one order shuffled with
    ``seed`` into ``out``: sheets of whole images at ``scale``×, each numbered and with its direction, nothing else;
    ``blind.csv`` (number, direction, an empty ``eye`` column) to fill; ``key.json``, which set and candidate each
    number is — not to be opened before the labels are in (``unblind`` reads it)."""
    from PIL import Image, ImageDraw

    from ..data.imaging import load_rgb

    if len(sets) < 2:
        raise ConfigError("--blind needs at least two sets: one set alone is not blind to anything")
    out = Path(out)
    require_new_folder(out)
    entries = []
    for folder in sets:
        folder = Path(folder)
        path = folder / "labels.csv"
        if not path.is_file():
            raise ConfigError(f"{path} not found: a set to label holds labels.csv")
        with open(path, newline="") as f:
            for k, r in enumerate(csv.DictReader(f), start=2):
                if r.get("eye"):
                    raise ConfigError(f"{path}, row {k} is labelled already: blind sheets are made from unlabelled sets")
                entries.append({"set": str(folder), "candidate": int(r["candidate"]), "file": r["file"],
                                "direction": f"{r['source_label']}->{r['target_label']}"})
    order = np.random.default_rng(seed).permutation(len(entries))
    entries = [entries[i] for i in order]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "blind.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, ["n", "direction", "eye"])
        wr.writeheader()
        wr.writerows({"n": n, "direction": e["direction"], "eye": ""} for n, e in enumerate(entries, start=1))
    (out / "key.json").write_text(json.dumps({"seed": seed, "sets": [str(s) for s in sets],
                                              "numbers": {str(n): [e["set"], e["candidate"]]
                                                          for n, e in enumerate(entries, start=1)}}, indent=1))
    cols, pad, head = 6, 8, 18
    for s in range(0, len(entries), per_sheet):
        part = entries[s:s + per_sheet]
        tiles = [Image.fromarray(load_rgb(Path(e["set"]) / e["file"])) for e in part]
        side = max(max(t.size) for t in tiles) * scale
        sheet = Image.new("RGB", (cols * (side + pad), -(-len(part) // cols) * (side + head + pad)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (e, tile) in enumerate(zip(part, tiles)):
            x, y = (k % cols) * (side + pad), (k // cols) * (side + head + pad)
            draw.text((x + 2, y + 3), f"#{s + k + 1}  {e['direction']}", fill="black")
            sheet.paste(tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST), (x, y + head))
        sheet.save(out / f"sheet-{s // per_sheet + 1}.png")
    return out


def unblind(out: Path) -> dict[str, dict[str, int]]:
    """Write the labels of a filled ``blind.csv`` back into each set's labels.csv (its ``eye`` column), and note in
    each set's set.json that it was labelled blind; returns, per set, the count of each label."""
    out = Path(out)
    path, key_path = out / "blind.csv", out / "key.json"
    for p in (path, key_path):
        if not p.is_file():
            raise ConfigError(f"{p} not found: make the blind sheets first (--blind)")
    key = json.loads(key_path.read_text())
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    per_set: dict[str, dict[int, str]] = {s: {} for s in key["sets"]}
    for k, r in enumerate(rows, start=2):
        if r["eye"] not in LABELS:
            raise ConfigError(f"{path}, row {k}: eye must be one of {', '.join(LABELS)}, got {r['eye']!r}")
        if r["n"] not in key["numbers"]:
            raise ConfigError(f"{path}, row {k}: number {r['n']!r} is not in {key_path}")
        folder, cand = key["numbers"][r["n"]]
        per_set[folder][int(cand)] = r["eye"]
    if len(rows) != len(key["numbers"]):
        raise ConfigError(f"{path} has {len(rows)} rows; {key_path} numbers {len(key['numbers'])}")
    counts = {}
    for folder, eye in per_set.items():
        write_labels(Path(folder), eye)
        meta_path = Path(folder) / "set.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        others = [Path(s).name for s in key["sets"] if s != folder]
        meta["blind"] = (f"labelled blind: mixed with {', '.join(others)} in one order shuffled with seed {key['seed']} "
                         f"({out}), each image shown whole with its number and direction only")
        meta_path.write_text(json.dumps(meta, indent=2))
        counts[folder] = {e: sum(1 for v in eye.values() if v == e) for e in LABELS}
    return counts


def read_labels(folder: Path) -> list[dict]:
    """The labelled rows of a set; a missing file, an unknown label or an unlabelled row is named."""
    folder = Path(folder)
    path = folder / "labels.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found: a labelled set holds labels.csv (make one with --export)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or set(FIELDS) - set(rows[0]):
        raise ConfigError(f"{path}: expected the columns {', '.join(FIELDS)}")
    for k, r in enumerate(rows, start=2):
        if r["eye"] not in LABELS:
            raise ConfigError(f"{path}, row {k}: eye must be one of {', '.join(LABELS)}, got {r['eye']!r}")
        for col in ("file", "mask"):
            p = (folder / r[col]).resolve()
            if folder.resolve() not in p.parents or not p.is_file():
                raise ConfigError(f"{path}, row {k}: {col} {r[col]!r} is not a file inside {folder}")
        r["source_label"], r["target_label"] = int(r["source_label"]), int(r["target_label"])
    return rows


def eye_check(folder: Path, judges=None, project=None, method: str = "ddb") -> dict:
    """Per direction: how many candidates the eyes call ``bird``, ``unclear`` and ``no``, and how many of each the
    judges call a target bird; the judges' count beside the eyes' strict (bird) and loose (bird or unclear) counts.
    With ``project`` (the one the set was made from, unchanged): the same split for its kept and pruned candidates."""
    from ..data.imaging import load_mask, load_rgb
    from .judges import load_judges

    folder = Path(folder)
    rows = read_labels(folder)
    judges = judges or load_judges()
    verdict = judges.judge([load_rgb(folder / r["file"]) for r in rows], [load_mask(folder / r["mask"]) for r in rows],
                           [r["target_label"] for r in rows])["target_bird"]
    out: dict[str, dict] = {}
    for r, v in zip(rows, verdict):
        d = out.setdefault(f"{r['source_label']}->{r['target_label']}",
                           {"n": 0, **{e: 0 for e in LABELS}, **{f"judges_{e}": 0 for e in LABELS}})
        d["n"] += 1
        d[r["eye"]] += 1
        d[f"judges_{r['eye']}"] += int(bool(v))
        if r.get("background"):  # the source image's background, when the set records it
            b = d.setdefault("by_background", {}).setdefault(r["background"], {"n": 0, **{e: 0 for e in LABELS}, "judges": 0})
            b["n"] += 1
            b[r["eye"]] += 1
            b["judges"] += int(bool(v))
    for d in out.values():
        d["judges"] = sum(d[f"judges_{e}"] for e in LABELS)
        # agreement with the strict eye: the judges' verdict matches "bird" / not "bird"
        d["agree_strict"] = (d["judges_bird"] + (d["unclear"] - d["judges_unclear"]) + (d["no"] - d["judges_no"])) / d["n"]
    meta = json.loads((folder / "set.json").read_text()) if (folder / "set.json").is_file() else {}
    res = {"set": str(folder), "meta": meta, "directions": dict(sorted(out.items())), "n": len(rows)}
    if project is not None:
        res["pruning"] = _pruning_by_eye(project, folder, rows, verdict, method)
    return res


def _pruning_by_eye(project, folder: Path, rows: list[dict], verdict, method: str) -> dict:
    """Per direction, the kept and the pruned candidates (``project``'s current thresholds and decisions) by what the
    eyes saw and what the judges say. The project must hold these very images (compared byte for byte)."""
    from ..curation.decisions import decisions

    kept = {d.candidate_id: d.kept for d in decisions(project, "c.method = ?", [method])}
    paths = {r["id"]: r["path"] for r in project.db.query("select id, path from candidates where method = ?", [method])}
    out: dict[str, dict] = {}
    for r, v in zip(rows, verdict):
        cid = int(r["candidate"])
        if cid not in paths or project.project_path(paths[cid]).read_bytes() != (folder / r["file"]).read_bytes():
            raise ConfigError(f"candidate {cid} of {project.root} is not the image labelled in {folder / r['file']}: "
                              "the project was generated again since the set was made")
        d = out.setdefault(f"{r['source_label']}->{r['target_label']}",
                           {side: {"n": 0, **{e: 0 for e in LABELS}, "judges": 0} for side in ("kept", "pruned")})
        side = d["kept" if kept.get(cid) else "pruned"]
        side["n"] += 1
        side[r["eye"]] += 1
        side["judges"] += int(bool(v))
    return dict(sorted(out.items()))


def eye_check_markdown(res: dict, command: str) -> str:
    m = res["meta"]
    lines = [f"## Do the judges agree with a person's eyes? (`{Path(res['set']).name}`)", "",
             f"Command: `{command}`. The set (`{res['set']}`, {res['n']} candidates"
             + (f"; {m['made_from']}" if m.get("made_from") else "") + ") was labelled by looking at each repainted "
             "region: **bird** (a bird of the target class, however blurred), **unclear** (a blob or a ghost that might be "
             "one), **no** (no bird, or the other class)" + (f". {m['labelled'].rstrip('.')}" if m.get("labelled") else "")
             + (f"; {m['blind']}" if m.get("blind") else "") + ".", "",
             "| direction | n | eyes: bird | eyes: unclear | eyes: no | judges: target bird | judges' target birds among the "
             "eyes' bird / unclear / no | agreement with the eyes (bird vs not) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for name, d in res["directions"].items():
        lines.append(f"| {name} | {d['n']} | {d['bird']} | {d['unclear']} | {d['no']} | {d['judges']} | "
                     f"{d['judges_bird']} / {d['judges_unclear']} / {d['judges_no']} | {100 * d['agree_strict']:.0f}% |")
    over = [f"{name}: {d['judges']} against {d['bird']} to {d['bird'] + d['unclear']}" for name, d in res["directions"].items()]
    split = [f"{name} on {bg}: eyes {b['bird']} bird / {b['unclear']} unclear / {b['no']} no of {b['n']}, judges {b['judges']}"
             for name, d in res["directions"].items() for bg, b in sorted(d.get("by_background", {}).items())]
    if split:
        lines += ["", "By the source image's background: " + "; ".join(split) + "."]
    lines += ["", "The judges' target-bird count against the eyes' strict and loose counts: " + "; ".join(over) + ". "
              "Where the judges' count lies above the eyes' strict count, the target-bird figures elsewhere in this "
              "document are an upper bound of what a person calls a bird; read them with their grids."]
    if res.get("pruning"):
        lines += ["", f"**Pruning by eye** (`{res['pruning_project']}` at its thresholds and decisions when measured): "
                  "what the eyes saw among the kept and the pruned candidates.", "",
                  "| direction | kept | kept: bird / unclear / no (eyes) | kept: judges' target birds | pruned | "
                  "pruned: bird / unclear / no (eyes) | kept that are birds (eyes) | birds (eyes) that are kept |",
                  "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |"]
        for name, d in res["pruning"].items():
            k, p = d["kept"], d["pruned"]
            birds = k["bird"] + p["bird"]
            lines.append(f"| {name} | {k['n']} | {k['bird']} / {k['unclear']} / {k['no']} | {k['judges']} | {p['n']} | "
                         f"{p['bird']} / {p['unclear']} / {p['no']} | "
                         + (f"{100 * k['bird'] / k['n']:.0f}%" if k["n"] else "—") + " | "
                         + (f"{100 * k['bird'] / birds:.0f}%" if birds else "—") + " |")
    return "\n".join(lines) + "\n"


def write_labels(folder: Path, eye: dict[int, str]) -> None:
    """Fill the ``eye`` column of ``folder``'s labels.csv from candidate id -> label (every row must be given)."""
    path = Path(folder) / "labels.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [r["candidate"] for r in rows if int(r["candidate"]) not in eye]
    if missing:
        raise ConfigError(f"no label for candidates {', '.join(missing[:10])}")
    for r in rows:
        r["eye"] = eye[int(r["candidate"])]
        if r["eye"] not in LABELS:
            raise ConfigError(f"candidate {r['candidate']}: eye must be one of {', '.join(LABELS)}")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        wr = csv.DictWriter(f, list(rows[0]) if rows else FIELDS)
        wr.writeheader()
        wr.writerows(rows)
    shutil.move(tmp, path)


# -- Several judges against every labelled set --------------------------------------------------------------------------

VAL_SETS = tuple(EYE_SETS / n for n in ("val-unet6k", "val-unet12k", "val-box", "val-object8"))
HELD_OUT_SETS = tuple(EYE_SETS / n for n in ("first-launch", "first-launch-relabel", "first-launch-window15"))


def eye_agreement(judges_dirs: list[Path], groups: dict[str, list[Path]]) -> dict:
    """For each judges folder and each labelled set (sets grouped, e.g. ``{"val": [...], "held out": [...]}``): how
    many images, how often the judges' target-bird verdict matches the eyes (*bird* against *unclear* / *no*), and
    how many of the eyes' bird / unclear / no they call a target bird; pooled per group."""
    from ..data.imaging import load_mask, load_rgb
    from .judges import load_judges

    loaded = {}
    for g, sets in groups.items():
        for folder in sets:
            rows = read_labels(folder)
            loaded[str(folder)] = (g, rows, [load_rgb(Path(folder) / r["file"]) for r in rows],
                                   [load_mask(Path(folder) / r["mask"]) for r in rows])
    out: dict = {"groups": {g: [str(s) for s in sets] for g, sets in groups.items()}, "judges": {}}
    for jd in judges_dirs:
        judges = load_judges(jd)
        rec_path = Path(jd) / "judges.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
        res = {"command": rec.get("command"), "sets": {}, "pooled": {}}
        for name, (g, rows, images, masks) in loaded.items():
            verdict = judges.judge(images, masks, [r["target_label"] for r in rows])["target_bird"]
            c = {"n": len(rows), "agree": 0, **{f"{e}": 0 for e in LABELS}, **{f"judges_{e}": 0 for e in LABELS}}
            for r, v in zip(rows, verdict):
                c[r["eye"]] += 1
                c[f"judges_{r['eye']}"] += int(bool(v))
                c["agree"] += int(bool(v) == (r["eye"] == "bird"))
            res["sets"][name] = c
            pool = res["pooled"].setdefault(g, {k: 0 for k in c})
            for k, v in c.items():
                pool[k] += v
        out["judges"][str(jd)] = res
    return out


def eye_agreement_markdown(res: dict, command: str) -> str:
    names = list(res["judges"])
    lines = ["## Which judges agree with the eyes?", "",
             f"Command: `{command}`. Agreement: the share of labelled images where the judges' verdict (a target bird or "
             "not) matches what the eyes saw (*bird*, against *unclear* or *no*). Per judges, the eyes' *bird* / "
             "*unclear* / *no* images they call target birds.", "",
             "| set | group | n | " + " | ".join(f"`{n}`: agreement | `{n}`: target birds among bird / unclear / no"
                                                 for n in names) + " |",
             "| --- | --- | ---: | " + " | ".join("---: | ---" for _ in names) + " |"]

    def cells(c):
        return f"{100 * c['agree'] / c['n']:.0f}% | {c['judges_bird']}/{c['bird']} / {c['judges_unclear']}/{c['unclear']} / " \
               f"{c['judges_no']}/{c['no']}"

    first = res["judges"][names[0]]
    for s, c in first["sets"].items():
        g = next(g for g, sets in res["groups"].items() if s in sets)
        lines.append(f"| {Path(s).name} | {g} | {c['n']} | " + " | ".join(cells(res["judges"][n]["sets"][s]) for n in names) + " |")
    for g, c in first["pooled"].items():
        lines.append(f"| **all {g}** | {g} | {c['n']} | " + " | ".join(cells(res["judges"][n]["pooled"][g]) for n in names) + " |")
    lines += ["", "Judges: " + "; ".join(f"`{n}` — `{res['judges'][n]['command'] or 'no training record'}`" for n in names) + "."]
    return "\n".join(lines) + "\n"


def blind_counts(sha: str, root: Path = EYE_SETS) -> Optional[dict]:
    """What the eyes saw in the labelled blind sets made from the model whose weights' sha256 starts with ``sha`` (12
    hex digits, as set.json quotes it) by ``bench inpainter`` (its val grids), pooled (one set per generation seed):
    ``{"sets": [folders], "seeds": [generation seeds], "birds": {direction: (birds, n)}}``; None when no such set."""
    import re

    sets, seeds, birds = [], [], {}
    for meta_file in sorted(Path(root).glob("*/set.json")):
        meta = json.loads(meta_file.read_text())
        made = meta.get("made_from", "")
        # the val grids of `bench inpainter` only (the card says so), not a project's candidates (a first launch)
        if f"weights sha256 {sha[:12]}" not in made or "bench inpainter" not in made or "blind" not in meta:
            continue
        try:
            rows = read_labels(meta_file.parent)
        except ConfigError:  # not labelled yet
            continue
        sets.append(meta_file.parent.as_posix())
        seed = re.search(r", seed (\d+),", meta["made_from"])
        seeds.append(int(seed.group(1)) if seed else None)
        for r in rows:
            d = f"{r['source_label']}->{r['target_label']}"
            b, n = birds.get(d, (0, 0))
            birds[d] = (b + (r["eye"] == "bird"), n + 1)
    return {"sets": sets, "seeds": seeds, "birds": dict(sorted(birds.items()))} if sets else None


def eye_counts(rows: list[dict]) -> dict:
    """Per direction: n and the eyes' bird / unclear / no, with the same split per source background when recorded."""
    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(f"{r['source_label']}->{r['target_label']}", {"n": 0, **{e: 0 for e in LABELS}})
        for c in [d] + ([d.setdefault("by_background", {}).setdefault(r["background"], {"n": 0, **{e: 0 for e in LABELS}})]
                        if r.get("background") else []):
            c["n"] += 1
            c[r["eye"]] += 1
    return dict(sorted(out.items()))


def _add_counts(into: dict, c: dict) -> None:
    for name, d in c.items():
        t = into.setdefault(name, {"n": 0, **{e: 0 for e in LABELS}})
        for k in ("n", *LABELS):
            t[k] += d[k]
        for bg, b in d.get("by_background", {}).items():
            tb = t.setdefault("by_background", {}).setdefault(bg, {"n": 0, **{e: 0 for e in LABELS}})
            for k in ("n", *LABELS):
                tb[k] += b[k]


def eye_pool(groups: dict[str, list[Path]]) -> dict:
    """What the eyes saw, summed over labelled sets: ``groups`` maps a name (a model, a setting) to its sets (e.g. one
    per generation seed); per group, each set's counts per direction and their sum. No judge is run."""
    if not groups:
        raise ConfigError("eye pool: give at least one group of labelled sets")
    out: dict = {"groups": {}}
    seen: dict[str, str] = {}
    for g, sets in groups.items():
        if not sets:
            raise ConfigError(f"eye pool: group {g!r} has no set")
        res = {"sets": {}, "pooled": {}}
        for folder in sets:
            key = Path(folder).as_posix()
            if key in seen:
                raise ConfigError(f"eye pool: {key} is given twice (groups {seen[key]!r} and {g!r})")
            seen[key] = g
            c = eye_counts(read_labels(Path(folder)))
            res["sets"][key] = c
            _add_counts(res["pooled"], c)
        out["groups"][g] = res
    return out


def eye_pool_markdown(res: dict, command: str, title: str) -> str:
    def cell(d: dict) -> str:
        return f"{d['bird']} / {d['unclear']} / {d['no']} of {d['n']}"

    lines = [f"## What the eyes saw, pooled: {title}", "",
             f"Command: `{command}`. Each set's candidates labelled by eye (**bird**: a bird of the target class, a "
             "body with a head or a neck, however blurred; **unclear**: a ghost or a blob that might be one; **no**), "
             "summed over the sets of each group; no judge is involved.", "",
             "| group | set | direction | eyes: bird / unclear / no | bird % |", "| --- | --- | --- | --- | ---: |"]
    for g, r in res["groups"].items():
        for s, c in r["sets"].items():
            lines += [f"| {g} | {Path(s).name} | {name} | {cell(d)} | {100 * d['bird'] / d['n']:.0f}% |"
                      for name, d in c.items()]
        lines += [f"| **{g}** | **all {len(r['sets'])}** | {name} | **{cell(d)}** | **{100 * d['bird'] / d['n']:.0f}%** |"
                  for name, d in r["pooled"].items()]
    split = [f"{g}, {name} on {bg}: {b['bird']} birds of {b['n']}" for g, r in res["groups"].items()
             for name, d in r["pooled"].items() for bg, b in sorted(d.get("by_background", {}).items())]
    if split:
        lines += ["", "Pooled, by the source image's background: " + "; ".join(split) + "."]
    return "\n".join(lines) + "\n"
