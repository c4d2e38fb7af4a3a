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
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import db_dump
from ddb_core import api
from ddb_core.cli import main
from ddb_core.errors import DDBError
from ddb_core.store import Project


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

    def unknown_place(ctx):
        ds = _fresh_dataset(ctx, "place")
        _edit_metadata(ds, lambda rows: rows[2].update(place="5"))
        _import(ctx, ds)

    def path_escapes_root(ctx):
        ds = _fresh_dataset(ctx, "escape")
        _edit_metadata(ds, lambda rows: rows[2].update(img_filename="/etc/hostname.png"))
        _import(ctx, ds)

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
        from ddb_core.models import build_classifier, save_checkpoint

        path = ctx["base"] / "r34.pt"
        save_checkpoint(build_classifier("resnet34", 2), path, arch="resnet34", num_classes=2, image_size=32)
        api.load_erm(Project.open(ctx["root"]), str(path), "resnet18", 32)

    def ckpt_not_torch(ctx):
        path = ctx["base"] / "notes.pt"
        path.write_text("these are not weights")
        api.load_erm(Project.open(ctx["root"]), str(path), "resnet18", 32)

    def ckpt_wrong_classes(ctx):
        from ddb_core.models import build_classifier

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


CASES = imports() + cli_cases() + app_cases() + model_cases() + masker_cases()


@pytest.mark.parametrize("name,case,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_problem_and_changes_nothing(ctx, name, case, message):
    project = Project.open(ctx["root"])
    before = db_dump(project)
    with pytest.raises(DDBError) as err:
        case(ctx)
    assert __import__("re").search(message, str(err.value), flags=__import__("re").S), str(err.value)
    assert db_dump(Project.open(ctx["root"])) == before
    assert len(CASES) >= 30
