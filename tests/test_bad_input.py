"""The bad-input battery: every case is refused with a clear error that names what is wrong, and the
project database is byte-for-byte the same before and after (a dump of it).

Cases span dataset imports, command-line arguments, app handlers (through a real Gradio server),
model folders, checkpoints and masker options. `pytest tests/test_bad_input.py --collect-only -q`
counts them (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import db_dump
from ddb_core import api
from ddb_core.cli import main
from ddb_core.project.errors import DDBError
from ddb_core.project.store import Project


@pytest.fixture(scope="module")
def ctx(candidates_project_template, tiny_dataset, tmp_path_factory):
    """One project with candidates, a copy of the tiny dataset to break, and the app serving the project."""
    from gradio_client import Client

    from ui.app import build_app, launch_kwargs

    base = tmp_path_factory.mktemp("battery")
    root = base / "proj"
    shutil.copytree(candidates_project_template, root)
    allowed = base / "allowed"
    allowed.mkdir()
    app = build_app(str(root), build_demo=False, data_roots=[str(allowed)])
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_kwargs(str(root)))
    client = Client(app.local_url, verbose=False)
    client.predict(api_name="/load")
    yield {"root": root, "base": base, "allowed": allowed, "dataset": tiny_dataset, "client": client, "app": app}
    app.close()


def _fresh_dataset(ctx, name: str) -> Path:
    dst = ctx["base"] / "datasets" / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(ctx["dataset"], dst)
    return dst


def _edit_metadata(root: Path, edit) -> None:
    rows = list(csv.DictReader(open(root / "metadata.csv")))
    fields = list(rows[0])
    edit(rows)
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _import(ctx, ds: Path, fmt: str = "waterbirds", **kw):
    api.create_project(ctx["root"], fmt, ds, replace=True, delete_derived=True, **kw)


def _row_edit(name: str, row: int, **values):
    """A case: a copy of the dataset whose metadata row ``row`` takes ``values``, imported."""
    def case(ctx):
        ds = _fresh_dataset(ctx, name)
        _edit_metadata(ds, lambda rows: rows[row].update(**values))
        _import(ctx, ds)
    return case


# Each case: (id, function of ctx that must fail, regex the message must match).

def imports():
    def no_metadata(ctx):
        ds = _fresh_dataset(ctx, "nometa")
        (ds / "metadata.csv").unlink()
        _import(ctx, ds)

    def missing_column(ctx):
        ds = _fresh_dataset(ctx, "nocol")
        text = (ds / "metadata.csv").read_text().replace("place", "location", 1)
        (ds / "metadata.csv").write_text(text)
        _import(ctx, ds)

    def truncated_jpeg(ctx):
        ds = _fresh_dataset(ctx, "trunc")
        img = ds / "images" / "train" / "cut.jpg"
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(buf, "JPEG")
        img.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        _edit_metadata(ds, lambda rows: rows[0].update(img_filename="images/train/cut.jpg"))
        _import(ctx, ds)

    def non_utf8_csv(ctx):
        ds = _fresh_dataset(ctx, "latin1")
        data = (ds / "metadata.csv").read_bytes().replace(b"img_filename", "img_filenamé".encode("latin-1"), 1)
        (ds / "metadata.csv").write_bytes(data)
        _import(ctx, ds)

    def malformed_dataset_json(ctx):
        ds = _fresh_dataset(ctx, "badjson")
        (ds / "dataset.json").write_text('{"class_names": ["a", "b"],,}')
        _import(ctx, ds)

    def dataset_json_wrong_type(ctx):
        ds = _fresh_dataset(ctx, "badjson2")
        (ds / "dataset.json").write_text('{"class_names": "landbird"}')
        _import(ctx, ds)

    def same_file_two_spellings(ctx):
        ds = _fresh_dataset(ctx, "spell")
        _edit_metadata(ds, lambda rows: rows[1].update(img_filename="./" + rows[0]["img_filename"].replace("/", "//")))
        _import(ctx, ds)

    def html_suffix(ctx):
        ds = _fresh_dataset(ctx, "html")
        src = ds / "images" / "train" / "train_00000.png"
        shutil.copy(src, ds / "images" / "train" / "page.html")
        _edit_metadata(ds, lambda rows: rows[0].update(img_filename="images/train/page.html"))
        _import(ctx, ds)

    unknown_place = _row_edit("place", 2, place="5")

    path_escapes_root = _row_edit("escape", 2, img_filename="/etc/hostname.png")

    def partial_groups_csv(ctx):
        ds = ctx["base"] / "datasets" / "folder"
        for split in ("train", "val"):
            for c in ("cat", "dog"):
                (ds / split / c).mkdir(parents=True, exist_ok=True)
                for k in range(2):
                    Image.new("RGB", (20, 12 + k), (k * 90, 40, 200)).save(ds / split / c / f"{k}.png")
        (ds / "groups.csv").write_text("path,attr\ntrain/cat/0.png,indoor\n")
        _import(ctx, ds, "imagefolder", groups_csv=str(ds / "groups.csv"))

    def one_class(ctx):
        ds = ctx["base"] / "datasets" / "oneclass"
        (ds / "train" / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 14)).save(ds / "train" / "cat" / "0.png")
        _import(ctx, ds, "imagefolder")

    def class_name_count(ctx):
        _import(ctx, ctx["dataset"], class_names=["one"])

    def object_prompt_unknown_class(ctx):
        _import(ctx, ctx["dataset"], object_prompt={"zebra": "horse"})

    def celeba_unknown_attribute(ctx):
        ds = ctx["base"] / "datasets" / "celeba"
        (ds / "img_align_celeba").mkdir(parents=True, exist_ok=True)
        (ds / "list_attr_celeba.txt").write_text("1\nSmiling Male\n000001.jpg 1 -1\n")
        (ds / "list_eval_partition.txt").write_text("000001.jpg 0\n")
        _import(ctx, ds, "celeba")

    def reimport_without_consent(ctx):
        api.create_project(ctx["root"], "waterbirds", ctx["dataset"], replace=True)

    return [
        ("import: no metadata.csv", no_metadata, r"metadata.csv not found"),
        ("import: missing column", missing_column, r"missing column\(s\) place; found .*'location'"),
        ("import: truncated JPEG", truncated_jpeg, r"unreadable image files \(1 row\):\n  - line 2: images/train/cut.jpg"),
        ("import: non-UTF-8 CSV", non_utf8_csv, r"metadata.csv is not UTF-8 text \(byte \d+, line 1"),
        ("import: malformed dataset.json", malformed_dataset_json, r"dataset.json is not valid JSON \(line 1, column"),
        ("import: dataset.json field", dataset_json_wrong_type, r"dataset.json: class_names must be a list"),
        ("import: one file, two spellings", same_file_two_spellings, r"duplicate image ids \(1 row\):\n  - line 3: '.*' also at line 2"),
        ("import: .html file", html_suffix, r"files whose name is not an image's .*page.html"),
        ("import: unknown place", unknown_place, r"line 4: place='5'"),
        ("import: absolute path", path_escapes_root, r"paths that escape the dataset root"),
        ("import: partial groups CSV", partial_groups_csv, r"images without a group in groups.csv .*\(7 rows\):\n  - train/cat/1.png"),
        ("import: one class", one_class, r"too few classes"),
        ("import: class names count", class_name_count, r"y in 0..0, .*; --class-names named 1 class\)"),
        ("import: object prompt class", object_prompt_unknown_class, r"unknown class\(es\) zebra"),
        ("import: CelebA attribute", celeba_unknown_attribute, r"label attribute 'Blond_Hair' is not a column"),
        ("import: re-import over candidates", reimport_without_consent, r"holds .*8 candidates.*--delete-derived"),
    ]


def cli_cases():
    def run(*args):
        def case(ctx):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main([args[0], "-p", str(ctx["root"]), *args[1:]])
            assert code == 2, f"exit code {code}"
            raise DDBError(err.getvalue())
        return case

    def bad_config(ctx):
        cfg = ctx["base"] / "run.json"
        cfg.write_text("{not json")
        run("run", "--config", str(cfg))(ctx)

    return [
        ("cli: prune --P not a number", run("prune", "--P", "0=abc"), r"--P"),
        ("cli: prune --Psi unknown class", run("prune", "--Psi", "5=0.5"), r"Psi threshold for class 5: the project has classes 0..1"),
        ("cli: prune --Psi above 1", run("prune", "--Psi", "0=5"), r"Psi threshold for class 0 must be in \[0, 1\.001\]"),
        ("cli: prune --Psi negative", run("prune", "--Psi", "0=-0.5"), r"Psi threshold for class 0 must be in \[0, 1\.001\]"),
        ("cli: generate --pairs", run("generate", "--pairs", "0-1"), r"--pairs expects i:j items, got 0-1"),
        ("cli: generate --resolution", run("generate", "--resolution", "100"), r"resolution must be a multiple of 8"),
        ("cli: select --k", run("select", "--k", "2.5"), r"k >= 1 is a count and must be a whole number, got 2.5"),
        ("cli: retrain --gamma", run("retrain", "--gamma", "-1"), r"every gamma must be a finite number >= 0, got -1"),
        ("cli: run --config missing", run("run", "--config", "/nonexistent/run.json"), r"run config /nonexistent/run.json does not exist"),
        ("cli: run --config not JSON", bad_config, r"is not valid JSON"),
        ("cli: decide unknown id", run("decide", "987654", "--accept"), r"no candidate with id 987654"),
        ("cli: invert --lr", run("invert", "--lr", "inf"), r"lr must be a finite number > 0"),
    ]


def app_cases():
    def call(api_name, *args):
        def case(ctx):
            from gradio_client.exceptions import AppError

            try:
                ctx["client"].predict(*args, api_name=api_name)
            except AppError as e:
                raise DDBError(str(e)) from None
        return case

    def outside(ctx):
        call("/load_checkpoint", str(ctx["base"] / "proj" / ".." / "secret.pt"), "resnet18", 32)(ctx)

    return [
        ("app: masker options not JSON", call("/save_models", "", "grabcut", "{shape: box"), r"masker options must be JSON"),
        ("app: masker options not an object", call("/save_models", "", "grabcut", "[1, 2]"), r"must be a JSON object"),
        ("app: checkpoint outside the allowed folders", call("/load_checkpoint", "/etc/passwd", "resnet18", 32),
         r"checkpoint '/etc/passwd' is outside the folders this server may read"),
        ("app: dataset folder outside", call("/create_project", "waterbirds", "/usr/share", "", "", ""),
         r"dataset folder '/usr/share' is outside"),
        ("app: model folder outside", call("/save_models", "/tmp", "grabcut", ""), r"inpainting model '/tmp' is outside"),
        ("app: masker model path outside", call("/save_models", "", "langsam", '{"sam": "/root/sam_vit_b.pth"}'),
         r"masker option sam '/root/sam_vit_b.pth' is outside"),
        ("app: range filter", call("/filter_psi", "", "all", "id", "a,b", "", ""), r"a range is two numbers 'min,max', got 'a,b'"),
        ("app: checkpoint path with ..", outside, r"is outside the folders"),
    ]


def model_cases():
    def inpaint_folder_without_index(ctx):
        folder = ctx["base"] / "model-noindex"
        folder.mkdir(exist_ok=True)
        api.load_inpainter(Project.open(ctx["root"]), str(folder))

    def corrupt_safetensors(ctx):
        from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

        folder = ctx["base"] / "model-corrupt"
        if not folder.exists():
            build_pipeline(MicroSDConfig()).save_pretrained(folder)
        w = next((folder / "unet").glob("*.safetensors"))
        w.write_bytes(w.read_bytes()[:200])
        api.load_inpainter(Project.open(ctx["root"]), str(folder))

    def ckpt_wrong_arch(ctx):
        from ddb_core.classifiers.models import build_classifier, save_checkpoint

        path = ctx["base"] / "r34.pt"
        save_checkpoint(build_classifier("resnet34", 2), path, arch="resnet34", num_classes=2, image_size=32)
        api.load_erm(Project.open(ctx["root"]), str(path), "resnet18", 32)

    def ckpt_not_torch(ctx):
        path = ctx["base"] / "notes.pt"
        path.write_text("these are not weights")
        api.load_erm(Project.open(ctx["root"]), str(path), "resnet18", 32)

    def ckpt_wrong_classes(ctx):
        from ddb_core.classifiers.models import build_classifier

        path = ctx["base"] / "three.pt"
        torch.save(build_classifier("resnet18", 3).state_dict(), path)
        api.load_erm(Project.open(ctx["root"]), str(path), "resnet18", 32)

    def ckpt_pickle(ctx):
        path = ctx["base"] / "pickle.pt"
        torch.save({"state_dict": {"fc.weight": torch.zeros(2, 512)}, "hook": Path("/tmp")}, path)
        api.load_erm(Project.open(ctx["root"]), str(path), "resnet18", 32)

    return [
        ("model: inpainting folder without model_index.json", inpaint_folder_without_index, r"model_index.json is missing"),
        ("model: truncated safetensors", corrupt_safetensors, r"unet/diffusion_pytorch_model.safetensors cannot be read"),
        ("checkpoint: another architecture", ckpt_wrong_arch, r"is a resnet34, but resnet18 was asked for"),
        ("checkpoint: not a torch file", ckpt_not_torch, r"cannot be read as a PyTorch state_dict \(weights_only=True\)"),
        ("checkpoint: class count", ckpt_wrong_classes, r"has 3 output classes, but the project has 2"),
        ("checkpoint: pickled objects", ckpt_pickle, r"weights_only=True"),
    ]


def masker_cases():
    def masker(name, **opts):
        def case(ctx):
            api.load_masker(Project.open(ctx["root"]), name, opts)
        return case

    return [
        ("masker: grabcut init", masker("grabcut", init="circle"), r"grabcut init must be 'box' or 'saliency', got 'circle'"),
        ("masker: gradcam threshold", masker("gradcam", threshold=2), r"gradcam threshold must be in \[0, 1\], got 2"),
        ("masker: provided shape", masker("provided", shape="oval"), r"shape must be 'mask' or 'box', got 'oval'"),
        ("masker: unknown name", masker("magicwand"), r"unknown masker 'magicwand'; choose one of"),
        ("masker: unknown option", masker("grabcut", radius=3), r"grabcut.*radius"),
    ]


# -- the second round: what a hostile or careless user tried (issue "nothing wrong gets in") --------------

def _cli(*args, project=True):
    def case(ctx):
        err = io.StringIO()
        argv = [*args, *(["-p", str(ctx["root"])] if project else [])]
        argv = [a(ctx) if callable(a) else a for a in argv]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        assert code == 2, f"exit code {code}: {err.getvalue()}"
        assert "Traceback" not in err.getvalue()
        raise DDBError(err.getvalue())
    return case


def _file(name: str, write):
    """A callable that writes a file under the battery's folder and returns its path (for _cli)."""
    def make(ctx):
        path = ctx["base"] / name
        write(path)
        return str(path)
    return make


def _ckpt(edit):
    def write(path):
        from ddb_core.classifiers.models import build_classifier

        state = build_classifier("resnet18", 2).state_dict()
        torch.save(edit(state), path)
    return write


def _nan(state):
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    return state


def _inf(state):
    state["fc.bias"][1] = float("inf")
    return state


LONG = "/tmp/" + "x" * 300 + "/y" * 2100  # over the name (255) and path (4096) limits


def second_round_imports():
    def dup_header(ctx):
        ds = _fresh_dataset(ctx, "duphead")
        lines = (ds / "metadata.csv").read_text().splitlines()
        flipped = [lines[0] + ",y"] + [ln + "," + str(1 - int(ln.split(",")[lines[0].split(",").index("y")]))
                                       for ln in lines[1:]]
        (ds / "metadata.csv").write_text("\n".join(flipped) + "\n")
        _import(ctx, ds)

    def extra_field(ctx):
        ds = _fresh_dataset(ctx, "extrafield")
        lines = (ds / "metadata.csv").read_text().splitlines()
        lines[3] += ",surplus"
        (ds / "metadata.csv").write_text("\n".join(lines) + "\n")
        _import(ctx, ds)

    def header_only(ctx):
        ds = _fresh_dataset(ctx, "headeronly")
        (ds / "metadata.csv").write_text((ds / "metadata.csv").read_text().splitlines()[0] + "\n")
        _import(ctx, ds)

    y_fraction = _row_edit("yfrac", 1, y="1.5")

    split_unknown = _row_edit("split3", 0, split="3")

    image_missing = _row_edit("missingimg", 4, img_filename="images/train/not_here.png")

    def symlink_out(ctx):
        ds = _fresh_dataset(ctx, "linkout")
        outside = ctx["base"] / "outside.png"
        Image.new("RGB", (30, 20)).save(outside)
        (ds / "images" / "train" / "link.png").symlink_to(outside)
        _edit_metadata(ds, lambda rows: rows[0].update(img_filename="images/train/link.png"))
        _import(ctx, ds)

    def empty_word(ctx):
        _import(ctx, ctx["dataset"], object_prompt={"landbird": "", "waterbird": "bird"})

    def blank_word(ctx):
        _import(ctx, ctx["dataset"], object_prompt="   ")

    def source_is_file(ctx):
        _import(ctx, ctx["dataset"] / "metadata.csv")

    def groups_dup_header(ctx):
        ds = ctx["base"] / "datasets" / "folder2"
        for c in ("cat", "dog"):
            (ds / "train" / c).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (22, 14), (90, 40, 200)).save(ds / "train" / c / "0.png")
        (ds / "groups.csv").write_text("path,attr,attr\ntrain/cat/0.png,indoor,outdoor\ntrain/dog/0.png,a,b\n")
        _import(ctx, ds, "imagefolder", groups_csv=str(ds / "groups.csv"))

    return [
        ("import: a header column twice", dup_header, r"names column\(s\) 'y' more than once"),
        ("import: a row with an extra field", extra_field, r"line 4: 6 fields, but the header has 5"),
        ("import: a header and no rows", header_only, r"metadata.csv has a header and no rows"),
        ("import: y not a whole number", y_fraction, r"line 3: y='1.5'"),
        ("import: unknown split", split_unknown, r"line 2: split='3'"),
        ("import: image file missing", image_missing, r"not_here.png"),
        ("import: symbolic link out of the dataset", symlink_out, r"escape the dataset root.*link.png"),
        ("import: empty object word for a class", empty_word, r"object word for landbird is empty"),
        ("import: blank object word", blank_word, r"object word for every class is empty"),
        ("import: source is a file", source_is_file, r"dataset folder .*metadata.csv is a file, not a folder"),
        ("import: groups CSV header twice", groups_dup_header, r"groups.csv: the header names column\(s\) 'attr' more than once"),
    ]


def second_round_cli():
    def fresh(name):
        return lambda ctx: str(ctx["base"] / name)

    def zero_db(path):
        path.mkdir(exist_ok=True)
        (path / "project.db").write_bytes(b"")

    def foreign_db(path):
        import sqlite3

        path.mkdir(exist_ok=True)
        with sqlite3.connect(path / "project.db") as c:
            c.execute("create table if not exists orders (id integer)")

    cfg = lambda text: _file("run-config.json", lambda p: p.write_text(text))
    return [
        ("cli: init --source too long", _cli("init", "--format", "waterbirds", "--source", LONG, "-p", lambda ctx: str(ctx["base"] / "p-long"), project=False),
         r"File name too long"),
        ("cli: erm load path too long", _cli("erm", "load", "--checkpoint", LONG, "--arch", "resnet18"), r"File name too long"),
        ("cli: invert --model too long", _cli("invert", "--model", LONG), r"File name too long"),
        ("cli: erm load a folder", _cli("erm", "load", "--checkpoint", lambda ctx: str(ctx["base"]), "--arch", "resnet18"), r"is a folder"),
        ("cli: erm load integer keys", _cli("erm", "load", "--checkpoint", _file("intkeys.pt", _ckpt(lambda s: {0: s["fc.weight"]})),
                                            "--arch", "resnet18"), r"keys that are not parameter names \(e.g. 0 of type int\)"),
        ("cli: erm load NaN weights", _cli("erm", "load", "--checkpoint", _file("nan.pt", _ckpt(_nan)), "--arch", "resnet18", "--image-size", "32"),
         r"NaN or infinite values in 1 tensor\(s\): layer2.0.conv1.weight"),
        ("cli: erm load infinite weights", _cli("erm", "load", "--checkpoint", _file("inf.pt", _ckpt(_inf)), "--arch", "resnet18"),
         r"NaN or infinite values in 1 tensor\(s\): fc.bias"),
        ("cli: erm load empty file", _cli("erm", "load", "--checkpoint", _file("empty.pt", lambda p: p.write_bytes(b"")), "--arch", "resnet18"),
         r"empty.pt cannot be read"),
        ("cli: run --config a JSON array", _cli("run", "--config", cfg("[1, 2]")), r"must be a JSON object .* got a JSON list"),
        ("cli: run --config k as text", _cli("run", "--config", cfg('{"selection": {"k": "abc"}}')),
         r"section 'selection': k must be a finite number, got 'abc'"),
        ("cli: run --config section not an object", _cli("run", "--config", cfg('{"inpaint": 3}')),
         r"section 'inpaint' must be an object"),
        ("cli: run --config NaN", _cli("run", "--config", cfg('{"inpaint": {"guidance": NaN}}')),
         r"guidance must be a finite number, got nan"),
        ("cli: run --config flag as text", _cli("run", "--config", cfg('{"inpaint": {"paste_back": "no"}}')),
         r"paste_back must be true or false, got 'no'"),
        ("cli: generate --guidance nan", _cli("generate", "--guidance", "nan"), r"guidance must be a finite number >= 0, got nan"),
        ("cli: generate --guidance -1", _cli("generate", "--guidance", "-1"), r"guidance must be a finite number >= 0"),
        ("cli: generate --strength 1.5", _cli("generate", "--strength", "1.5"), r"strength must be in \(0, 1\]"),
        ("cli: generate --steps 0", _cli("generate", "--steps", "0"), r"steps must be >= 1"),
        ("cli: init empty object word", _cli("init", "--format", "waterbirds", "--source", lambda ctx: str(ctx["dataset"]),
                                             "--object-prompt", "landbird=", "-p", fresh("p-word"), project=False),
         r"object word for landbird is empty"),
        ("cli: prune --P nan", _cli("prune", "--P", "0=nan"), r"P.*0.*(finite|nan)"),
        ("cli: score --device tpu", _cli("score", "--device", "tpu"), r"tpu"),
        ("cli: score --ig-dtype float8", _cli("score", "--ig-dtype", "float8"), r"float8"),
        ("cli: select --k 0", _cli("select", "--k", "0"), r"k must be a positive count or fraction, got 0"),
        ("cli: select --k -3", _cli("select", "--k", "-3"), r"k must be a positive count or fraction, got -3"),
        ("cli: select --k per class, one too many", _cli("select", "--k", "1", "2", "3"), r"--k: 3 counts for 2 classes"),
        ("cli: select --k and --k-total", _cli("select", "--k", "2", "--k-total", "5"), r"--k or --k-total, not both"),
        ("cli: mask --engine ray --device cuda without a GPU reserved",
         _cli("mask", "--masker", "grabcut", "--engine", "ray", "--device", "cuda:1"), r"cuda:1"),
        ("cli: a 0-byte project.db", _cli("status", "-p", _file("zero", zero_db) , project=False),
         r"project.db is empty \(0 bytes\), not a project database"),
        ("cli: another program's database", _cli("status", "-p", _file("foreign", foreign_db), project=False),
         r"an SQLite database of another program \(tables orders\)"),
    ]


def second_round_app():
    def call(api_name, *args):
        def case(ctx):
            from gradio_client.exceptions import AppError

            values = [a(ctx) if callable(a) else a for a in args]
            try:
                ctx["client"].predict(*values, api_name=api_name)
            except AppError as e:
                raise DDBError(str(e)) from None
        return case

    walk = lambda ctx: str(ctx["allowed"] / "p" / "exports" / "dataset-1" / ".." / ".." / ".." / ".." / "outside_ds")
    return [
        ("app: masker option sam a list", call("/save_models", "", "langsam", '{"sam": ["a", "b"]}'),
         r"masker option sam must be a path or a hub id \(text\), got list"),
        ("app: masker option dino a number", call("/save_models", "", "langsam", '{"dino": 7}'),
         r"masker option dino must be a path or a hub id \(text\), got int"),
        ("app: masker option sam an object", call("/save_models", "", "langsam", '{"sam": {"path": "/x"}}'),
         r"masker option sam must be a path or a hub id \(text\), got dict"),
        ("app: grabcut option a list", call("/save_models", "", "grabcut", '{"iterations": [1, 2]}'),
         r"option iterations must be a number, text or true/false, got list"),
        ("app: unknown option saved", call("/save_models", "", "grabcut", '{"radius": 3}'),
         r"grabcut masker: unknown option\(s\) radius"),
        ("app: NUL byte in a path", call("/load_checkpoint", "/tmp/a\x00b.pt", "resnet18", 32), r"control character"),
        ("app: a path that is too long", call("/load_checkpoint", "x" * 5000, "resnet18", 32), r"too long for a path"),
        ("app: a relative path walking out of an export", call("/create_project", "waterbirds", walk, "", "", ""),
         r"dataset folder .* is outside the folders"),
        ("app: a relative dataset path is not a hub id", call("/create_project", "waterbirds", "org/name", "", "", ""),
         r"dataset folder 'org/name' is outside"),
        ("app: masker options nested 100,000 deep", call("/save_models", "", "grabcut", "[" * 100_000),
         r"masker options must be JSON"),
    ]


def second_round_models():
    def micro(ctx, name, edit):
        from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

        folder = ctx["base"] / name
        if folder.exists():
            shutil.rmtree(folder)
        build_pipeline(MicroSDConfig()).save_pretrained(folder)
        edit(folder)
        api.load_inpainter(Project.open(ctx["root"]), str(folder))

    def no_tokenizer(ctx):
        micro(ctx, "m-notok", lambda f: [x.unlink() for x in (f / "tokenizer").iterdir()
                                         if x.name in ("tokenizer.json", "vocab.json", "merges.txt")])

    def no_scheduler(ctx):
        micro(ctx, "m-nosched", lambda f: (f / "scheduler" / "scheduler_config.json").unlink())

    def unlisted(ctx):
        def edit(f):
            import json

            index = json.loads((f / "model_index.json").read_text())
            del index["text_encoder"]
            (f / "model_index.json").write_text(json.dumps(index))
        micro(ctx, "m-unlisted", edit)

    def no_unet_config(ctx):
        micro(ctx, "m-nounetcfg", lambda f: (f / "unet" / "config.json").unlink())

    def index_array(ctx):
        micro(ctx, "m-array", lambda f: (f / "model_index.json").write_text("[1, 2]"))

    def no_vae_weights(ctx):
        micro(ctx, "m-novae", lambda f: [x.unlink() for x in (f / "vae").glob("*.safetensors")])

    return [
        ("model: no tokenizer files", no_tokenizer, r"tokenizer/tokenizer.json is missing \(the tokenizer needs tokenizer.json or vocab.json"),
        ("model: no scheduler config", no_scheduler, r"scheduler/scheduler_config.json is missing"),
        ("model: a component not listed", unlisted, r"does not list the component\(s\) text_encoder"),
        ("model: no unet config", no_unet_config, r"unet/config.json is missing"),
        ("model: model_index.json an array", index_array, r"must hold an object of components, got list"),
        ("model: no vae weights", no_vae_weights, r"vae has no weights file"),
    ]


def third_round_imports():
    """Import refuses what it cannot read safely before opening it (reliability, third round)."""
    def named_pipe(ctx):
        ds = _fresh_dataset(ctx, "fifo")
        os.mkfifo(ds / "images" / "train" / "pipe.png")  # reading it would block forever
        _edit_metadata(ds, lambda rows: rows[0].update(img_filename="images/train/pipe.png"))
        _import(ctx, ds)

    def nul_in_path(ctx):
        ds = _fresh_dataset(ctx, "nul")
        _edit_metadata(ds, lambda rows: rows[0].update(img_filename="images/train/a\x00b.png"))
        _import(ctx, ds)

    def newline_in_path(ctx):
        ds = _fresh_dataset(ctx, "newline")
        _edit_metadata(ds, lambda rows: rows[2].update(img_filename="images/train/a\nb.png"))
        _import(ctx, ds)

    return [
        ("import: a named pipe listed as an image", named_pipe, r"not regular files.*pipe.png"),
        # the row's first line (the header is line 1), the break written as \n, not as a break in the message
        ("import: a quoted line break inside an image path", newline_in_path, r"control character.*line 4: 'images/train/a\\nb.png'"),
        ("import: a NUL byte inside an image path", nul_in_path, r"control character.*a\\x00b.png"),
    ]


def _users_dataset(ctx) -> str:
    """A folder holding a user's own metadata.csv (no demo-data marker), which demo-data must not write over."""
    folder = ctx["base"] / "users-dataset"
    folder.mkdir(exist_ok=True)
    (folder / "metadata.csv").write_text("img_id,img_filename,y,split,place\n")
    return str(folder)


def _damaged_copy(ctx) -> str:
    """A copy of the battery's project with a stretch of its database overwritten (the pages in the middle)."""
    import sqlite3

    dst = ctx["base"] / "damaged"
    if not dst.exists():
        shutil.copytree(ctx["root"], dst)
        c = sqlite3.connect(dst / "project.db")
        c.execute("pragma wal_checkpoint(truncate)")
        c.close()
        size = (dst / "project.db").stat().st_size
        with open(dst / "project.db", "r+b") as f:
            f.seek(size // 2 // 4096 * 4096)
            f.write(b"\xff" * 8192)
    return str(dst)


def third_round_cli():
    """Options checked before anything runs and kept only when the command succeeds (reliability, third round)."""
    return [
        ("cli: decide on a damaged database", _cli("decide", "3", "--reject", "-p", _damaged_copy, project=False),
         r"project.db is damaged .*restore it from a backup"),
        ("cli: mask --dilate 100000000", _cli("mask", "--masker", "provided", "--dilate", "100000000"),
         r"dilate_radius must be a whole number of pixels in 0..512, got 100000000"),
        ("cli: mask --dilate -5", _cli("mask", "--masker", "provided", "--dilate", "-5"),
         r"dilate_radius must be a whole number of pixels in 0..512, got -5"),
        ("cli: generate --dilate -5", _cli("generate", "--masker", "provided", "--dilate", "-5"),
         r"dilate_radius must be a whole number of pixels in 0..512"),
        ("cli: generate --template unknown field", _cli("generate", "--template", "{name} {nope}"),
         r"template '\{name\} \{nope\}' cannot be filled.*KeyError"),
        ("cli: generate --template open brace", _cli("generate", "--template", "{name}{"), r"cannot be filled.*ValueError"),
        ("cli: generate --template positional field", _cli("generate", "--template", "{name}{0}"),
         r"cannot be filled.*IndexError"),
        ("cli: export bundle over the database", _cli("export", "bundle", "--out", lambda ctx: str(ctx["root"] / "project.db"),
                                                      "--force"), r"inside the project's own project.db"),
        ("cli: export bundle over the metadata", _cli("export", "bundle", "--out",
                                                      lambda ctx: str(ctx["root"] / "dataset" / "metadata.csv")),
         r"(inside the project's own dataset|already exists)"),
        ("cli: export dataset --method bogus", _cli("export", "dataset", "--method", "bogus"),
         r"no candidates of that method"),
        ("cli: decide an id beyond SQLite's", _cli("decide", "99999999999999999999999", "--accept"),
         r"id 99999999999999999999999 is not an id of this project"),
        ("cli: select --k inf", _cli("select", "--k", "inf"), r"--k must be a finite number"),
        ("cli: bench inpainter --crop-scale 0.5", _cli("bench", "inpainter", "--crop-scale", "0.5", "--no-docs", project=False),
         r"--crop-scale: the window is a multiple >= 1 of the mask's box, got 0.5"),
        ("cli: bench inpainter --crop-scale nan", _cli("bench", "inpainter", "--crop-scale", "nan", "--no-docs", project=False),
         r"--crop-scale: the window is a multiple >= 1"),
        ("cli: erm train --momentum 5", _cli("erm", "train", "--momentum", "5"), r"--momentum must be in \[0, 1\)"),
        ("cli: evaluate --n-boot 0", _cli("evaluate", "--models", "1", "--n-boot", "0"), r"--n-boot must be at least 100"),
        ("cli: audit --limit -5", _cli("audit", "--limit", "-5"), r"--limit must be at least 1"),
        ("cli: retrain --seeds 0 0", _cli("retrain", "--seeds", "0", "0"), r"--seeds 0 0: give each value once"),
        ("cli: evaluate --models 1 1", _cli("evaluate", "--models", "1", "1"), r"--models 1 1: give each value once"),
        ("cli: retrain --gamma with --gamma-grid", _cli("retrain", "--gamma", "1", "--gamma-grid", "1", "3"),
         r"--gamma 1.0 and --gamma-grid 1.0 3.0 contradict each other"),
        ("cli: retrain --per-class-gamma without a grid", _cli("retrain", "--per-class-gamma"),
         r"--per-class-gamma chooses one γ per class from --gamma-grid"),
        ("cli: prune --undo --defaults", _cli("prune", "--undo", "--defaults"), r"--undo and --defaults contradict"),
        ("cli: invert a class that does not exist", _cli("invert", "--classes", "7"), r"class 7: the project has classes 0..1"),
        ("cli: mask --box-threshold 5", _cli("mask", "--masker", "langsam", "--box-threshold", "5"),
         r"option box_threshold must be a number in \[0, 1\], got 5"),
        ("cli: queue --csv over an existing file", _cli("queue", "--csv", _file("queue.csv", lambda p: p.write_text("mine"))),
         r"queue --csv .*queue.csv already exists; choose another path, or pass --force"),
        ("cli: queue --csv over the database", _cli("queue", "--force", "--csv", lambda ctx: str(ctx["root"] / "project.db")),
         r"inside the project's own project.db"),
        ("cli: queue --force without --csv", _cli("queue", "--force"), r"--force replaces the --csv file; give --csv FILE too"),
        ("cli: run --config pairs of a class that does not exist", _cli("run", "--config", _file("pairs1.json",
         lambda p: p.write_text('{"pairs": [[0, 5]]}'))), r"direction 0->5 is not a pair of two different classes in 0..1"),
        ("cli: run --config pairs as one string", _cli("run", "--config", _file("pairs2.json",
         lambda p: p.write_text('{"pairs": "0:1"}'))), r"section 'pairs' must be a list of directions"),
        ("cli: run --config a direction twice", _cli("run", "--config", _file("pairs3.json",
         lambda p: p.write_text('{"pairs": ["0:1", [0, 1]]}'))), r"section 'pairs' names a direction twice"),
        ("cli: demo-data --out over another dataset", _cli("demo-data", "--out", _users_dataset, project=False),
         r"holds files that a demo-data run did not write .*Nothing was written"),
        ("cli: train-micro-inpainter --out over another folder", _cli("train-micro-inpainter", "--smoke", "--out",
                                                                       _users_dataset, project=False),
         r"holds files that train-micro-inpainter did not write.*Nothing was written"),
        ("cli: run --config a pair with a flag", _cli("run", "--config", _file("pairs4.json",
         lambda p: p.write_text('{"pairs": [[0, true]]}'))), r"'pairs', item 0: expected \[i, j\]"),
    ]


CASES = (imports() + cli_cases() + app_cases() + model_cases() + masker_cases() + second_round_imports()
         + second_round_cli() + second_round_app() + second_round_models() + third_round_imports() + third_round_cli())


@pytest.mark.parametrize("name,case,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_problem_and_changes_nothing(ctx, name, case, message):
    project = Project.open(ctx["root"])
    before = db_dump(project)
    with pytest.raises(DDBError) as err:
        case(ctx)
    assert __import__("re").search(message, str(err.value), flags=__import__("re").S), str(err.value)
    assert db_dump(Project.open(ctx["root"])) == before
    assert len(CASES) >= 90


def test_the_documented_count_is_the_battery():
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    assert re.search(rf"## Bad input: {len(CASES)} cases", text) and f"`{len(CASES) + 1} tests collected`" in text
    table = text.split("## Bad input:", 1)[1].split("\n\n## ", 1)[0]
    rows = [int(m) for m in re.findall(r"^\| [^|]+ \| (\d+) \|", table, flags=re.M)]
    assert sum(rows) == len(CASES), f"the table's rows sum to {sum(rows)}, the battery has {len(CASES)} cases"
