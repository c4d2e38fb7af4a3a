"""Dataset import: read a dataset from disk, validate every row, write it into a project.

Consumes a dataset folder in one of four layouts and produces ``samples`` rows in the project DB:

- ``waterbirds`` (WILDS): ``metadata.csv`` with ``img_filename, y, place, split`` (split 0/1/2 =
  train/val/test), optional ``mask_filename``. The demo benchmark uses this layout too.
- ``celeba``: ``list_attr_celeba.txt`` + ``list_eval_partition.txt`` and the images in
  ``img_align_celeba/`` (or the root); label and spurious attribute configurable.
- ``metashift``: ``{train,val,test}/<class>/<context>/<image>``; the context is the spurious
  attribute. Without a ``val`` folder a seeded share of train becomes val.
- ``imagefolder``: ``{train,val,test}/<class>/<image>``, with an optional CSV (``path, attr``) of
  group attributes.

Validation happens before anything is written and reports every problem at once, each with the
first 20 rows at fault and a count. Images are referenced in place (not copied); non-RGB images
are accepted and converted to RGB when loaded.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import random
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image

from ..project.errors import DatasetError, ProjectError, list_rows
from ..project.store import Project

FORMATS = ("demo", "waterbirds", "celeba", "metashift", "imagefolder")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SPLIT_NAMES = {"0": "train", "1": "val", "2": "test"}


@dataclass
class ParsedDataset:
    """A dataset read from disk, not yet validated. Row numbers are 1-based lines of ``source``."""

    format: str
    root: Path
    source: Path  # the file (or folder) rows come from, named in error messages
    class_names: list[str]
    attr_names: list[str]
    rows: list[dict] = field(default_factory=list)  # key, path, label, split, attr, mask_path, line
    object_prompt: Optional[str] = None  # the object word of every class (None: the class name)
    object_prompts: Optional[dict[str, str]] = None  # per class name, when given per class
    label_name: str = "y"
    attr_name: Optional[str] = None
    problems: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def problem(self, kind: str, row: str) -> None:
        self.problems.setdefault(kind, []).append(row)


@dataclass(frozen=True)
class ImportReport:
    format: str
    n_samples: int
    split_counts: dict[str, int]
    group_counts: dict[str, dict[str, int]]
    converted_to_rgb: int
    warnings: tuple[str, ...] = ()  # what will not work with this dataset (no val split, …)


# ---------------------------------------------------------------------------------------------
# Reading text files: BOM and stray spaces accepted, other encodings refused by name.


def _read_text(path: Path) -> str:
    """A UTF-8 text file (a BOM is accepted); anything else is a ``DatasetError`` naming the file and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DatasetError(f"{path} is not UTF-8 text (byte {e.start}, line {line}: {data[e.start:e.start + 1]!r}); "
                           f"save it as UTF-8 and import again") from None


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(line number, row)]) of a CSV file; header names stripped of spaces and a BOM."""
    import io

    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{path} is empty: expected a header line") from None
    except csv.Error as e:
        raise DatasetError(f"{path}: not a CSV file ({e})") from None
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DatasetError(f"{path}: the header names column(s) {', '.join(map(repr, twice))} more than once; "
                           f"which one holds the values is ambiguous — keep one")
    rows = []
    try:
        start = reader.line_num + 1  # the line a record starts on (a quoted line break makes it span several)
        for values in reader:
            first, start = start, reader.line_num + 1
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DatasetError(f"{path}, line {first}: {len(values)} fields, but the header has "
                                   f"{len(header)} ({', '.join(header)})")
            rows.append((first, dict(zip(header, values))))
    except csv.Error as e:
        raise DatasetError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from None
    return header, rows


def _dataset_json(root: Path) -> dict:
    """The optional ``dataset.json`` beside a Waterbirds-layout ``metadata.csv``, checked field by field."""
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{path} must hold a JSON object, got {type(info).__name__}")
    for key in ("class_names", "place_names"):
        v = info.get(key)
        if v is not None and not (isinstance(v, list) and v and all(isinstance(x, str) and x.strip() for x in v)):
            raise DatasetError(f"{path}: {key} must be a list of non-empty names, got {v!r}")
    if info.get("object_prompt") is not None and not isinstance(info["object_prompt"], str):
        raise DatasetError(f"{path}: object_prompt must be a string, got {info['object_prompt']!r}")
    return info


def clean_path(rel: str) -> str:
    """One spelling of a relative path: forward slashes, no ``./``, no doubled or trailing slashes."""
    rel = rel.strip().replace("\\", "/")
    norm = posixpath.normpath(rel) if rel else rel
    return "" if norm == "." else norm


# ---------------------------------------------------------------------------------------------
# Readers.


def read_waterbirds(root: Path, class_names: Optional[list[str]] = None, attr_names: Optional[list[str]] = None) -> ParsedDataset:
    """``class_names`` / ``attr_names`` name the y and place values (default: the dataset's
    ``dataset.json``, else landbird/waterbird and land/water); they also bound the values accepted."""
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise DatasetError(f"{meta} not found: a Waterbirds (WILDS) dataset has a metadata.csv at its root")
    info = _dataset_json(root)
    ds = ParsedDataset(
        format="waterbirds", root=root, source=meta,
        class_names=list(class_names or info.get("class_names", ["landbird", "waterbird"])),
        attr_names=list(attr_names or info.get("place_names", ["land", "water"])),
        object_prompt=info.get("object_prompt", "bird"), label_name="y", attr_name="place",
    )
    cols, rows = _csv_rows(meta)
    missing = [c for c in ("img_filename", "y", "place", "split") if c not in cols]
    if missing:
        raise DatasetError(f"{meta}: missing column(s) {', '.join(missing)}; found {', '.join(map(repr, cols)) or 'none'}")
    if not rows:
        raise DatasetError(f"{meta} has a header and no rows: there is no image to import")
    has_mask = "mask_filename" in cols
    ignored = [c for c in cols if c not in ("img_filename", "y", "place", "split", "mask_filename")]
    if ignored:
        ds.warnings.append(f"{meta.name}: column(s) {', '.join(ignored)} are not used (the import reads img_filename, "
                           f"y, place, split and mask_filename)")
    for i, r in rows:
        y, place, split = (r.get("y") or "").strip(), (r.get("place") or "").strip(), (r.get("split") or "").strip()
        bad = []
        if y not in {str(k) for k in range(len(ds.class_names))}:
            bad.append(f"y={y!r}")
        if place not in {str(k) for k in range(len(ds.attr_names))}:
            bad.append(f"place={place!r}")
        if split not in SPLIT_NAMES:
            bad.append(f"split={split!r}")
        if bad:
            named = "".join(f"; --{flag} named {len(v)} {what}{'es' if what == 'class' and len(v) != 1 else ''}"
                            f"{'s' if what != 'class' and len(v) != 1 else ''}"
                            for flag, v, what in (("class-names", class_names, "class"), ("attr-names", attr_names, "value"))
                            if v)
            ds.problem("unknown label, place or split values (y in 0..%d, place in 0..%d, split in 0/1/2%s)"
                       % (len(ds.class_names) - 1, len(ds.attr_names) - 1, named), f"line {i}: {', '.join(bad)}")
            continue
        path = clean_path(r.get("img_filename") or "")
        mask = clean_path(r.get("mask_filename") or "") if has_mask else ""
        ds.rows.append({"key": path, "path": path, "label": int(y), "split": SPLIT_NAMES[split],
                        "attr": int(place), "mask_path": mask or None, "line": i})
    return ds


def read_celeba(root: Path, label_attr: str = "Blond_Hair", spurious_attr: str = "Male") -> ParsedDataset:
    attr_file, part_file = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
    for f in (attr_file, part_file):
        if not f.is_file():
            raise DatasetError(f"{f} not found: a CelebA dataset has list_attr_celeba.txt and list_eval_partition.txt at its root")
    img_dir = root / "img_align_celeba" if (root / "img_align_celeba").is_dir() else root
    lines = _read_text(attr_file).splitlines()
    if len(lines) < 2:
        raise DatasetError(f"{attr_file}: expected a count line and a header line of attribute names")
    names = lines[1].split()
    for a, arg in ((label_attr, "label attribute"), (spurious_attr, "spurious attribute")):
        if a not in names:
            raise DatasetError(f"{attr_file}: {arg} {a!r} is not a column; columns are {', '.join(names)}")
    li, si = names.index(label_attr), names.index(spurious_attr)
    pretty = label_attr.replace("_", " ").lower()
    ds = ParsedDataset(
        format="celeba", root=root, source=attr_file,
        class_names=[f"not {pretty}", pretty],
        attr_names=[f"not {spurious_attr.replace('_', ' ').lower()}", spurious_attr.replace("_", " ").lower()],
        object_prompt="hair" if "hair" in label_attr.lower() else pretty,
        label_name=label_attr, attr_name=spurious_attr,
    )
    partition: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(_read_text(part_file).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in SPLIT_NAMES:
            ds.problem(f"malformed lines in {part_file.name} (expected '<file> 0|1|2')", f"line {i}: {line[:80]!r}")
            continue
        partition[parts[0]] = (SPLIT_NAMES[parts[1]], i)
    rel_dir = os.path.relpath(img_dir, root)
    for i, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            ds.problem(f"malformed lines in {attr_file.name} (expected a file name and {len(names)} values)", f"line {i}")
            continue
        fname, vals = parts[0], parts[1:]
        lv, sv = vals[li], vals[si]
        if lv not in ("1", "-1") or sv not in ("1", "-1"):
            ds.problem(f"unknown attribute values in {attr_file.name} (expected 1 or -1)", f"line {i}: {label_attr}={lv!r}, {spurious_attr}={sv!r}")
            continue
        if fname not in partition:
            ds.problem(f"images without a split in {part_file.name}", f"line {i}: {fname}")
            continue
        path = fname if rel_dir == "." else f"{rel_dir}/{fname}"
        ds.rows.append({"key": fname, "path": path, "label": int(lv == "1"), "split": partition[fname][0],
                        "attr": int(sv == "1"), "mask_path": None, "line": i})
    return ds


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def read_metashift(root: Path, val_fraction: float = 0.1, seed: int = 0) -> ParsedDataset:
    splits = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    if "train" not in splits or "test" not in splits:
        raise DatasetError(f"{root}: a MetaShift dataset has train/<class>/<context>/ and test/<class>/<context>/ folders; found {', '.join(splits) or 'neither'}")
    classes = sorted({d.name for s in splits for d in (root / s).iterdir() if d.is_dir()})
    contexts = sorted({c.name for s in splits for d in (root / s).iterdir() if d.is_dir() for c in d.iterdir() if c.is_dir()})
    ds = ParsedDataset(format="metashift", root=root, source=root, class_names=classes, attr_names=contexts,
                       label_name="class", attr_name="context")
    for s in splits:
        for ci, cls in enumerate(classes):
            cdir = root / s / cls
            if not cdir.is_dir():
                continue
            for img in _images_under(cdir):
                rel = img.relative_to(root).as_posix()
                parts = img.relative_to(cdir).parts
                if len(parts) < 2:
                    ds.problem("images not inside a context folder (expected <split>/<class>/<context>/<image>)", rel)
                    continue
                ds.rows.append({"key": rel, "path": rel, "label": ci, "split": s, "attr": contexts.index(parts[0]),
                                "mask_path": None, "line": rel})
    if "val" not in splits:
        rng = random.Random(seed)
        train = [r for r in ds.rows if r["split"] == "train"]
        for r in rng.sample(train, k=max(1, round(len(train) * val_fraction)) if train else 0):
            r["split"] = "val"
    return ds


def read_imagefolder(root: Path, groups_csv: Optional[Path] = None) -> ParsedDataset:
    splits = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    if "train" not in splits:
        raise DatasetError(f"{root}: an ImageFolder dataset has train/<class>/<image> (and val/, test/) folders; no train/ folder found")
    classes = sorted({d.name for s in splits for d in (root / s).iterdir() if d.is_dir()})
    ds = ParsedDataset(format="imagefolder", root=root, source=root, class_names=classes, attr_names=[],
                       label_name="class")
    for s in splits:
        for ci, cls in enumerate(classes):
            cdir = root / s / cls
            if cdir.is_dir():
                for img in _images_under(cdir):
                    rel = img.relative_to(root).as_posix()
                    ds.rows.append({"key": rel, "path": rel, "label": ci, "split": s, "attr": None, "mask_path": None, "line": rel})
    if groups_csv is not None:
        groups_csv = Path(groups_csv)
        if not groups_csv.is_file():
            raise DatasetError(f"group attribute file {groups_csv} not found")
        by_path = {r["path"]: r for r in ds.rows}
        cols, rows = _csv_rows(groups_csv)
        missing = [c for c in ("path", "attr") if c not in cols]
        if missing:
            raise DatasetError(f"{groups_csv}: missing column(s) {', '.join(missing)}; found {', '.join(map(repr, cols)) or 'none'}")
        values = []
        for i, r in rows:
            p, a = clean_path(r.get("path") or ""), (r.get("attr") or "").strip()
            if p not in by_path:
                ds.problem(f"rows of {groups_csv.name} naming no image of the dataset", f"line {i}: {p!r}")
                continue
            if not a:
                ds.problem(f"rows of {groups_csv.name} with an empty attr", f"line {i}: {p!r}")
                continue
            values.append((by_path[p], a))
        names = sorted({a for _, a in values})
        ds.attr_names = names
        ds.attr_name = "attr"
        for row, a in values:
            row["attr"] = names.index(a)
        covered = {id(row) for row, _ in values}
        for r in ds.rows:
            if id(r) not in covered:
                ds.problem(f"images without a group in {groups_csv.name} (give every image one, or import without "
                           f"--groups-csv)", r["path"])
    return ds


# ---------------------------------------------------------------------------------------------
# Validation.


def _check_image(path: Path) -> tuple[Optional[str], bool]:
    """(problem or None, whether the image is not RGB). The image is decoded in full: ``verify()``
    alone does not read JPEG data, so a truncated JPEG would pass and fail later, inside a job."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            im.load()
        return None, mode != "RGB"
    except FileNotFoundError:
        return "missing", False
    except Exception as e:  # PIL raises many types for corrupt files
        return f"unreadable ({type(e).__name__}: {e})", False


def validate(ds: ParsedDataset, check_images: bool = True, workers: int = 8) -> int:
    """Check every row; raise one ``DatasetError`` listing all problems. Returns #non-RGB images.

    Warnings (what will not work, without stopping the import) are left in ``ds.warnings``."""
    root_real = Path(os.path.realpath(ds.root))
    seen: dict[str, object] = {}
    seen_files: dict[str, object] = {}
    to_check: list[tuple[dict, str, Path]] = []
    for r in ds.rows:
        if r["key"] in seen:
            ds.problem("duplicate image ids", f"{_where(r)}: {r['key']!r} also at {seen[r['key']]}")
            continue
        seen[r["key"]] = _where(r)
        for col in ("path", "mask_path"):
            rel = r.get(col)
            if col == "mask_path" and not rel:
                continue
            if not rel:
                ds.problem("rows with an empty image path", _where(r))
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raw = rel.encode("utf-8", "surrogateescape")  # the name's own bytes, printable
                where = f"line {r['line']}: " if isinstance(r["line"], int) else ""
                ds.problem("file names that are not valid UTF-8 (rename them)", f"{where}{raw!r}")
                continue
            if any(ord(c) < 32 for c in rel):  # a NUL byte or a line break inside a path: no file is named so
                ds.problem("paths with a control character (a NUL byte or a line break)", f"{_where(r)}: {rel!r}")
                continue
            if Path(rel).suffix.lower() not in IMAGE_EXTS:
                ds.problem(f"files whose name is not an image's ({', '.join(sorted(IMAGE_EXTS))})", f"{_where(r)}: {rel!r}")
                continue
            full = Path(os.path.realpath(ds.root / rel))
            if Path(rel).is_absolute() or not full.is_relative_to(root_real):
                ds.problem(f"paths that escape the dataset root {ds.root}", f"{_where(r)}: {rel!r}")
                continue
            try:  # a pipe or a device would block or never end when read: refused before anything opens it
                mode = os.stat(full).st_mode
            except OSError:
                mode = None  # missing: reported as such below
            if mode is not None and not stat.S_ISREG(mode):
                ds.problem(f"{'images' if col == 'path' else 'masks'} that are not regular files (a pipe, a device or a "
                           f"folder)", f"{_where(r)}: {rel!r}")
                continue
            if col == "path":
                if str(full) in seen_files:
                    ds.problem("the same image file listed twice (under two spellings of its path)",
                               f"{_where(r)}: {rel!r} is the file of {seen_files[str(full)]}")
                    continue
                seen_files[str(full)] = f"{_where(r)} ({rel!r})"
            to_check.append((r, col, full))
    converted = 0
    if check_images and to_check:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda t: _check_image(t[2]), to_check))
        for (r, col, _full), (problem, non_rgb) in zip(to_check, results):
            what = "image" if col == "path" else "mask"
            if problem == "missing":
                ds.problem(f"missing {what} files", f"{_where(r)}: {r[col]}")
            elif problem:
                ds.problem(f"unreadable {what} files", f"{_where(r)}: {r[col]}: {problem}")
            elif non_rgb and col == "path":
                converted += 1
    present = {(r["split"], r["label"]) for r in ds.rows}
    if len(ds.class_names) < 2:
        ds.problem("too few classes (DDB moves images between classes: it needs at least two)",
                   f"{len(ds.class_names)} class found in {ds.source}: {', '.join(ds.class_names) or 'none'}")
    for ci, name in enumerate(ds.class_names):
        if ("train", ci) not in present:
            ds.problem("empty classes (no training image)", f"class {ci} {name!r}")
    if not ds.rows and not ds.problems:
        ds.problem("no images found", str(ds.source))
    if ds.problems:
        parts = [list_rows(rows, kind) for kind, rows in ds.problems.items()]
        raise DatasetError(f"cannot import {ds.format} dataset from {ds.source}; nothing was imported.\n" + "\n".join(parts))
    splits = {r["split"] for r in ds.rows}
    if "val" not in splits:
        ds.warnings.append("no val split: training keeps the last epoch instead of the best by val worst-group accuracy, "
                           "and γ search, JTT and DFR (which select on val) cannot run")
    if "test" not in splits:
        ds.warnings.append("no test split: there is nothing to report worst-group accuracy on")
    if not ds.attr_names or all(r["attr"] is None for r in ds.rows):
        ds.warnings.append("no group labels (spurious attribute): worst-group accuracy cannot be reported, and model "
                           "selection uses val accuracy")
    elif any(r["attr"] is None for r in ds.rows if r["split"] in ("val", "test")):
        ds.warnings.append("some val or test images have no group: they count in accuracy but in no group")
    return converted


def _where(r: dict) -> str:
    return f"line {r['line']}" if isinstance(r["line"], int) else str(r["line"])


# ---------------------------------------------------------------------------------------------
# Import into a project.


def read_dataset(fmt: str, root: str | os.PathLike, *, label_attr: str = "Blond_Hair", spurious_attr: str = "Male",
                 groups_csv: Optional[str] = None, val_fraction: float = 0.1, seed: int = 0,
                 class_names: Optional[list[str]] = None, attr_names: Optional[list[str]] = None,
                 object_prompt: Optional[str | dict[str, str]] = None) -> ParsedDataset:
    """Read a dataset folder. ``class_names`` / ``attr_names`` rename the classes and the spurious
    attribute's values (in label order); ``object_prompt`` is the object word of the prompts, one
    for every class or a {class name: word} dict."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} is a file, not a folder" if root.is_file() else
                           f"dataset folder {root} does not exist")
    for what, names in (("class_names", class_names), ("attr_names", attr_names)):
        if names is not None:
            clean = [str(n).strip() for n in names]
            if not clean or any(not n for n in clean) or len(set(clean)) != len(clean):
                raise DatasetError(f"{what} must be distinct non-empty names, got {list(names)}")
    if fmt in ("waterbirds", "demo"):
        ds = read_waterbirds(root, class_names, attr_names)
    elif fmt == "celeba":
        ds = read_celeba(root, label_attr, spurious_attr)
    elif fmt == "metashift":
        ds = read_metashift(root, val_fraction, seed)
    elif fmt == "imagefolder":
        ds = read_imagefolder(root, Path(groups_csv) if groups_csv else None)
    else:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _rename(ds, class_names, attr_names, object_prompt)
    return ds


def _rename(ds: ParsedDataset, class_names, attr_names, object_prompt) -> None:
    """Apply the user's names to a dataset read from disk (the counts must match what it holds)."""
    for what, names, current in (("class", class_names, ds.class_names), ("attribute value", attr_names, ds.attr_names)):
        if names is None or list(names) == list(current):
            continue
        if len(names) != len(current):
            raise DatasetError(f"{len(names)} {what} names given ({', '.join(names)}), but the {ds.format} dataset at "
                               f"{ds.root} has {len(current)}: {', '.join(current) or 'none'}")
        current[:] = [str(n).strip() for n in names]
    if object_prompt is not None:
        words = object_prompt if isinstance(object_prompt, dict) else {"every class": object_prompt}
        empty = [str(k) for k, w in words.items() if not isinstance(w, str) or not w.strip()]
        if empty:
            raise DatasetError(f"the object word for {', '.join(empty)} is empty; give a word the prompts can use "
                               f"(e.g. {ds.class_names[0]}=bird)")
    if isinstance(object_prompt, dict):
        unknown = sorted(set(object_prompt) - set(ds.class_names))
        if unknown:
            raise DatasetError(f"object prompts given for unknown class(es) {', '.join(unknown)}; the classes are "
                               f"{', '.join(ds.class_names)}")
        ds.object_prompts = {name: object_prompt.get(name, ds.object_prompt or name) for name in ds.class_names}
    elif object_prompt:
        ds.object_prompt = str(object_prompt).strip()


DERIVED_TABLES = ("decisions", "candidates", "masks", "selections", "class_stats", "tokens")  # in deletion order


def derived_work(project: Project) -> dict[str, int]:
    """What a project holds beyond its samples, that a re-import would orphan (rows per kind)."""
    q = lambda sql: project.db.execute(sql).fetchone()[0]
    return {"candidates": q("select count(*) from candidates"), "manual decisions": q("select count(*) from decisions"),
            "masks": q("select count(*) from masks"), "selected images": q("select count(*) from selections"),
            "tokens": q("select count(*) from tokens"), "models": q("select count(*) from models")}


def reimport_summary(project: Project) -> str:
    """In words: what the project holds and what a re-import would do to it."""
    work = derived_work(project)
    held = ", ".join(f"{n} {k}" for k, n in work.items() if n) or "nothing beyond its samples"
    return (f"project {project.root} holds {project.sample_count()} samples and {held}. Re-importing replaces the samples; "
            f"the candidates, their masks and files' rows, the selections, tokens and manual decisions are deleted (files "
            f"stay on disk, the audit log is kept), and no ERM model is active until you train or load one (models stay "
            f"listed)")


def import_dataset(project: Project, ds: ParsedDataset, *, replace: bool = False, check_images: bool = True,
                   root_relative_to_project: bool = False, converted: Optional[int] = None,
                   delete_derived: bool = False) -> ImportReport:
    """Validate ``ds`` and write it into ``project`` in one transaction (all rows or none).

    ``converted`` is the result of an earlier ``validate(ds)``; when given, validation is not repeated.
    Re-importing (``replace``) over a project with candidates, masks, selections or tokens is refused,
    saying what exists, unless ``delete_derived`` (then they are deleted with the old samples).
    """
    if converted is None:
        converted = validate(ds, check_images=check_images)
    if project.sample_count() and not replace:
        raise ProjectError(f"project {project.root} already holds {project.sample_count()} samples; pass replace=True (--replace) to re-import")
    work = derived_work(project)
    if replace and not delete_derived and any(n for k, n in work.items() if k != "models"):
        raise ProjectError(reimport_summary(project) + ". Nothing was changed. To go ahead, pass --delete-derived "
                           "(the app asks you to confirm), or import into a new project folder.")
    root = os.path.relpath(ds.root.resolve(), project.root) if root_relative_to_project else str(ds.root.resolve())
    with project.write():
        for table in DERIVED_TABLES:
            project.db.execute(f"delete from {table}")
        project.db.execute("delete from samples")
        project.db["samples"].insert_all(
            ({k: r[k] for k in ("key", "path", "label", "split", "attr", "mask_path")} for r in ds.rows), batch_size=2000)
        for key, value in {
            "dataset_format": ds.format, "dataset_root": root, "class_names": ds.class_names,
            "attr_names": ds.attr_names, "label_name": ds.label_name, "attr_name": ds.attr_name,
            "object_prompt": ds.object_prompts or {name: ds.object_prompt or name for name in ds.class_names},
            "active_erm_model": None,
        }.items():
            project.set_meta(key, value)
    splits = {s: project.sample_count(s) for s in ("train", "val", "test")}
    groups = {s: {group_name(ds.class_names, ds.attr_names, y, a): n for (y, a), n in sorted(project.group_counts(s).items())}
              for s in ("train", "val", "test")}
    return ImportReport(ds.format, len(ds.rows), splits, groups, converted, tuple(dict.fromkeys(ds.warnings)))


def group_name(class_names: list[str], attr_names: list[str], y: int, a: Optional[int]) -> str:
    if a is None or not attr_names:
        return class_names[y]
    return f"{class_names[y]}/{attr_names[a]}"
