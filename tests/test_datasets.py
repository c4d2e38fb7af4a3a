"""Dataset import: the four formats, and every bad-input case leaves the project DB unchanged."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import db_dump
from ddb_core.api import create_project
from ddb_core.project.errors import DatasetError, ProjectError
from ddb_core.data.imaging import load_rgb
from ddb_core.project.store import Project


def rewrite_metadata(root: Path, edit) -> None:
    rows = list(csv.DictReader(open(root / "metadata.csv")))
    fields = list(rows[0])
    rows, fields = edit(rows, fields)
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_waterbirds_import(tiny_project, tiny_dataset):
    rows = list(csv.DictReader(open(tiny_dataset / "metadata.csv")))
    assert tiny_project.sample_count() == len(rows)
    assert tiny_project.class_names == ["landbird", "waterbird"]
    assert tiny_project.attr_names == ["land", "water"]
    s = tiny_project.samples("train")[0]
    assert s["mask_path"].startswith("masks/") and tiny_project.dataset_path(s["path"]).exists()


def bad_cases():
    def missing_column(rows, fields):
        return [{k: v for k, v in r.items() if k != "place"} for r in rows], [f for f in fields if f != "place"]

    def unknown_label(rows, fields):
        rows[3]["y"] = "7"
        return rows, fields

    def missing_file(rows, fields):
        rows[2]["img_filename"] = "images/train/nope.png"
        return rows, fields

    def duplicate(rows, fields):
        rows[5]["img_filename"] = rows[4]["img_filename"]
        return rows, fields

    def escape(rows, fields):
        rows[1]["img_filename"] = "../outside.png"
        return rows, fields

    def empty_class(rows, fields):
        return [r for r in rows if not (r["y"] == "1" and r["split"] == "0")], fields

    return [
        (missing_column, "missing column(s) place"),
        (unknown_label, "line 5: y='7'"),
        (missing_file, "missing image files (1 row):\n  - line 4: images/train/nope.png"),
        (duplicate, "duplicate image ids (1 row):\n  - line 7"),
        (escape, "paths that escape the dataset root"),
        (empty_class, "empty classes (no training image) (1 row):\n  - class 1 'waterbird'"),
    ]


@pytest.mark.parametrize("edit,message", bad_cases(), ids=lambda v: getattr(v, "__name__", "msg"))
def test_bad_input_is_refused_with_a_clear_message_and_the_db_unchanged(tiny_project, dataset_copy, edit, message):
    (dataset_copy.parent / "outside.png").write_bytes((dataset_copy / "images/train/train_00000.png").read_bytes())
    before = db_dump(tiny_project)
    rewrite_metadata(dataset_copy, edit)
    with pytest.raises(DatasetError) as err:
        create_project(tiny_project.root, "waterbirds", dataset_copy, replace=True)
    assert message in str(err.value)
    assert "nothing was imported" in str(err.value) or "missing column" in str(err.value)
    assert db_dump(Project.open(tiny_project.root)) == before


def test_unreadable_image_is_named(tiny_project, dataset_copy):
    before = db_dump(tiny_project)
    (dataset_copy / "images/val/val_00002.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"unreadable image files \(1 row\):\n  - line \d+: images/val/val_00002.png"):
        create_project(tiny_project.root, "waterbirds", dataset_copy, replace=True)
    assert db_dump(tiny_project) == before


def test_many_bad_rows_show_the_first_20_and_a_count(tiny_project, dataset_copy):
    def edit(rows, fields):
        for r in rows[:30]:
            r["img_filename"] = r["img_filename"].replace(".png", "-gone.png")
        return rows, fields

    rewrite_metadata(dataset_copy, edit)
    with pytest.raises(DatasetError) as err:
        create_project(tiny_project.root, "waterbirds", dataset_copy, replace=True)
    msg = str(err.value)
    assert "missing image files (30 rows)" in msg and "… and 10 more" in msg
    assert msg.count("-gone.png") == 20


def test_bad_input_into_a_new_folder_creates_no_project(dataset_copy, tmp_path):
    rewrite_metadata(dataset_copy, lambda rows, f: ([{**r, "split": "9"} if i == 0 else r for i, r in enumerate(rows)], f))
    with pytest.raises(DatasetError, match="split='9'"):
        create_project(tmp_path / "new", "waterbirds", dataset_copy)
    assert not (tmp_path / "new").exists()


def test_existing_project_is_not_overwritten_without_replace(tiny_project, tiny_dataset):
    before = db_dump(tiny_project)
    with pytest.raises(ProjectError, match="--replace"):
        create_project(tiny_project.root, "waterbirds", tiny_dataset)
    assert db_dump(tiny_project) == before


def test_non_rgb_images_are_accepted_and_converted(tiny_project, dataset_copy):
    path = dataset_copy / "images/train/train_00001.png"
    Image.open(path).convert("L").save(path)
    project, rep = create_project(tiny_project.root, "waterbirds", dataset_copy, replace=True)
    assert rep.converted_to_rgb == 1
    assert load_rgb(path).shape == (32, 32, 3)


def write_png(path: Path, value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).convert(mode).save(path)


def test_celeba_layout(tmp_path):
    root = tmp_path / "celeba"
    names = ["Bald", "Blond_Hair", "Male"]
    lines = [str(8), " ".join(names)]
    parts = []
    for i in range(8):
        fname = f"{i:06d}.jpg"
        write_png(root / "img_align_celeba" / fname, i * 20)
        blond, male = (1 if i % 2 else -1), (1 if i % 3 == 0 else -1)
        lines.append(f"{fname} -1 {blond} {male}")
        parts.append(f"{fname} {0 if i < 4 else (1 if i < 6 else 2)}")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    project, rep = create_project(tmp_path / "p", "celeba", root)
    assert rep.split_counts == {"train": 4, "val": 2, "test": 2}
    assert project.class_names == ["not blond hair", "blond hair"] and project.attr_names == ["not male", "male"]
    row = project.samples("train")[1]
    assert row["path"] == "img_align_celeba/000001.jpg" and row["label"] == 1 and row["attr"] == 0
    with pytest.raises(DatasetError, match="label attribute 'Red_Hair' is not a column"):
        create_project(tmp_path / "q", "celeba", root, label_attr="Red_Hair")


def test_metashift_layout_and_val_split(tmp_path):
    root = tmp_path / "ms"
    for split, ctxs in (("train", {"cat": ["sofa", "bed"], "dog": ["bench", "bike"]}), ("test", {"cat": ["shelf"], "dog": ["shelf"]})):
        for cls, cs in ctxs.items():
            for c in cs:
                for i in range(5):
                    write_png(root / split / cls / c / f"{i}.jpg", 10 * i)
    project, rep = create_project(tmp_path / "p", "metashift", root, val_fraction=0.2)
    assert project.class_names == ["cat", "dog"]
    assert project.attr_names == ["bed", "bench", "bike", "shelf", "sofa"]
    assert rep.split_counts == {"train": 16, "val": 4, "test": 10}
    assert rep.group_counts["test"] == {"cat/shelf": 5, "dog/shelf": 5}


def test_imagefolder_with_group_csv(tmp_path):
    root = tmp_path / "if"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for i in range(3):
                write_png(root / split / cls / f"{i}.png", 40 * i, mode="RGBA")
    csv_path = tmp_path / "groups.csv"
    with open(csv_path, "w") as f:
        f.write("path,attr\n")
        for split in ("train", "test"):
            for cls in ("a", "b"):
                for i in range(3):
                    f.write(f"{split}/{cls}/{i}.png,{'red' if i else 'blue'}\n")
    project, rep = create_project(tmp_path / "p", "imagefolder", root, groups_csv=str(csv_path))
    assert rep.converted_to_rgb == 12
    assert project.attr_names == ["blue", "red"]
    assert rep.group_counts["train"] == {"a/blue": 1, "a/red": 2, "b/blue": 1, "b/red": 2}
    bad = tmp_path / "bad.csv"
    bad.write_text("path,attr\ntrain/a/9.png,red\n")
    with pytest.raises(DatasetError, match=r"naming no image of the dataset \(1 row\):\n  - line 2: 'train/a/9.png'"):
        create_project(tmp_path / "q", "imagefolder", root, groups_csv=str(bad))


def test_a_bom_and_spaces_in_the_header_are_accepted(tmp_path, tiny_dataset):
    ds = tmp_path / "bom"
    shutil.copytree(tiny_dataset, ds)
    lines = (ds / "metadata.csv").read_text().splitlines()
    header = ", ".join(f" {h} " for h in lines[0].split(","))
    (ds / "metadata.csv").write_bytes(("\ufeff" + "\n".join([header] + lines[1:]) + "\n").encode("utf-8"))
    project, rep = create_project(tmp_path / "p", "waterbirds", ds)
    assert rep.n_samples == len(lines) - 1 and project.class_names == ["landbird", "waterbird"]


def test_missing_splits_and_groups_are_warned_about(tmp_path):
    for c in ("cat", "dog"):
        write_png(tmp_path / "d" / "train" / c / "0.png", 10)
        write_png(tmp_path / "d" / "train" / c / "1.png", 200)
    _, rep = create_project(tmp_path / "p", "imagefolder", tmp_path / "d")
    text = " ".join(rep.warnings)
    assert "no val split" in text and "no test split" in text and "no group labels" in text


def test_a_file_name_that_is_not_utf8_is_refused_and_leaves_no_folder(tmp_path):
    import os

    for c in ("cat", "dog"):
        for k in range(2):
            write_png(tmp_path / "d" / "train" / c / f"{k}.png", 50 * k)
    bad = os.path.join(os.fsencode(tmp_path / "d" / "train" / "cat"), b"caf\xe9.png")
    with open(bad, "wb") as f:
        f.write((tmp_path / "d" / "train" / "cat" / "0.png").read_bytes())
    with pytest.raises(DatasetError) as err:
        create_project(tmp_path / "new", "imagefolder", tmp_path / "d")
    assert "file names that are not valid UTF-8 (rename them) (1 row):\n  - b'train/cat/caf\\xe9.png'" in str(err.value)
    str(err.value).encode("utf-8")  # printable
    assert not (tmp_path / "new").exists()


def test_exif_orientation_is_applied_as_a_viewer_would(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90° clockwise) loads upright, and its mask
    is read in the same orientation."""
    from ddb_core.data.imaging import load_mask

    raw = np.zeros((30, 50, 3), dtype=np.uint8)  # stored 50 wide, 30 high
    raw[:, :10] = 255  # a white band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    img = load_rgb(tmp_path / "phone.jpg")
    assert img.shape == (50, 30, 3)  # shown upright: 30 wide, 50 high
    assert img[:10].mean() > 200 and img[-10:].mean() < 50  # the band is now on top
    m = Image.fromarray(np.where(raw[..., 0] > 0, 255, 0).astype(np.uint8))
    m.save(tmp_path / "mask.png", exif=exif.tobytes())
    assert load_mask(tmp_path / "mask.png", img.shape[:2])[:10].mean() == 255


def test_a_mask_of_another_aspect_ratio_is_refused_one_of_another_size_resized(tmp_path):
    from ddb_core.data.imaging import load_mask

    Image.fromarray(np.full((40, 60), 255, np.uint8)).save(tmp_path / "half.png")  # 60×40: 3:2
    assert load_mask(tmp_path / "half.png", (80, 120)).shape == (80, 120)  # same ratio, twice the size
    with pytest.raises(DatasetError, match=r"half.png is 60×40 px but its image is 40×60 px: another aspect ratio"):
        load_mask(tmp_path / "half.png", (60, 40))


def test_unused_metadata_columns_are_named(dataset_copy, tmp_path):
    rows = list(csv.DictReader(open(dataset_copy / "metadata.csv")))
    with open(dataset_copy / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], "img_id", "place_filename"])
        w.writeheader()
        w.writerows({**r, "img_id": k, "place_filename": "x.jpg"} for k, r in enumerate(rows))
    _, report = create_project(tmp_path / "p", "waterbirds", dataset_copy)
    assert any("img_id, place_filename are not used" in w for w in report.warnings), report.warnings


def test_the_shipped_model_is_found_from_any_working_folder(tmp_path, monkeypatch):
    from ddb_core.method.inpainting import MICRO_MODEL, resolve_model_ref

    monkeypatch.chdir(tmp_path)
    assert Path(resolve_model_ref(MICRO_MODEL), "model_index.json").is_file()
