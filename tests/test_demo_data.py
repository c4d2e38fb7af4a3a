import csv
import time

import numpy as np
import pytest
from PIL import Image

from ddb_core.demo.data import DemoDataConfig, generate_demo_dataset, plan_rows, render_sample
from ddb_core.project.errors import ConfigError


def test_default_group_counts_follow_waterbirds_at_half_scale():
    counts = DemoDataConfig().group_counts()
    for got, want, tol in ((counts["train"], [1749, 92, 28, 509], 2), (counts["val"], [234, 233, 67, 67], 2),
                           (counts["test"], [564, 564, 160, 160], 5)):
        assert all(abs(g - w) <= tol for g, w in zip(got, want)), (got, want)


def test_rendering_is_deterministic_and_seed_dependent():
    a_img, a_mask = render_sample(0, "train", 5, 1, 0, 32)
    b_img, b_mask = render_sample(0, "train", 5, 1, 0, 32)
    c_img, _ = render_sample(1, "train", 5, 1, 0, 32)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (32, 32, 3) and a_img.dtype == np.uint8


def test_mask_marks_the_object_and_backgrounds_differ_by_place():
    img_land, mask = render_sample(0, "train", 1, 0, 0, 64)
    img_water, _ = render_sample(0, "train", 1, 0, 1, 64)
    assert set(np.unique(mask)) == {0, 255}
    area = (mask == 255).mean()
    assert 0.01 < area < 0.3, area
    # Water backgrounds are bluer than land backgrounds (the spurious feature).
    bg = mask == 0
    blue = lambda im: float(im[..., 2][bg].mean() - im[..., 1][bg].mean())
    assert blue(img_water) > blue(img_land) + 10


def test_generated_folder_layout_and_counts(tiny_dataset):
    rows = list(csv.DictReader(open(tiny_dataset / "metadata.csv")))
    assert list(rows[0]) == ["img_filename", "y", "place", "split", "mask_filename"]
    cfg = DemoDataConfig(seed=3, image_size=32, n_train=48, n_val=16, n_test=16, workers=1)
    for code, split in enumerate(("train", "val", "test")):
        got = [sum(1 for r in rows if r["split"] == str(code) and int(r["y"]) * 2 + int(r["place"]) == g) for g in range(4)]
        assert got == cfg.group_counts()[split]
    im = Image.open(tiny_dataset / rows[0]["img_filename"])
    assert im.mode == "RGB" and im.size == (32, 32)
    assert Image.open(tiny_dataset / rows[0]["mask_filename"]).mode == "L"


def test_same_seed_gives_identical_files(tmp_path):
    cfg = DemoDataConfig(seed=11, image_size=24, n_train=12, n_val=8, n_test=8, workers=2)
    a, b = generate_demo_dataset(tmp_path / "a", cfg), generate_demo_dataset(tmp_path / "b", cfg)
    assert a.read_text() == b.read_text()
    for r in csv.DictReader(open(a)):
        assert (tmp_path / "a" / r["img_filename"]).read_bytes() == (tmp_path / "b" / r["img_filename"]).read_bytes()


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="correlation"):
        DemoDataConfig(correlation=1.2)
    with pytest.raises(ConfigError, match="image_size"):
        DemoDataConfig(image_size=4)


def test_full_default_benchmark_generates_in_under_30_seconds(tmp_path):
    t0 = time.monotonic()
    meta = generate_demo_dataset(tmp_path / "demo", DemoDataConfig())
    elapsed = time.monotonic() - t0
    assert sum(1 for _ in open(meta)) - 1 == len(plan_rows(DemoDataConfig())) == 4427
    assert elapsed < 30, f"generation took {elapsed:.1f}s"
