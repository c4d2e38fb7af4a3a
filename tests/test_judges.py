"""The judges that look at the repainted region, and textual inversion inside the object's mask."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ddb_core.bench.judges import (CROP, JUDGE_SEEDS_FROM, JUDGES_DIR, JudgeTrainConfig, crop_box, judge_crop,
                                   judge_seed, load_judges, render_judge_set)
from ddb_core.demo.data import RESERVED_SEEDS_FROM, DemoDataConfig, render_scene
from ddb_core.project.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_judges_never_see_a_benchmark_seed():
    cfg = JudgeTrainConfig()
    used = [judge_seed(s) for s in (*cfg.train_seeds, cfg.check_seed)]
    assert all(s >= JUDGE_SEEDS_FROM > RESERVED_SEEDS_FROM for s in used)
    # the shipped judges were trained on those seeds, and a benchmark cannot use them
    record = json.loads((REPO / JUDGES_DIR / "judges.json").read_text())
    assert all(s >= RESERVED_SEEDS_FROM for s in record["judge_seeds"]["train"] + [record["judge_seeds"]["check"]])
    for s in used + [RESERVED_SEEDS_FROM]:
        with pytest.raises(ConfigError, match="reserved"):
            DemoDataConfig(seed=s)
    DemoDataConfig(seed=RESERVED_SEEDS_FROM - 1)  # the last benchmark seed
    # and a judge render is not the benchmark render of the same index
    a = render_judge_set(0, 4)["crops"]
    b = render_judge_set(1, 4)["crops"]
    assert a.shape == (4, CROP, CROP, 3) and not np.array_equal(a, b)


def _pad(image: np.ndarray, mask: np.ndarray, top: int, left: int, bottom: int, right: int):
    """The scene on a non-square canvas (the border repeated), and its mask moved with it."""
    img = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="edge")
    m = np.pad(mask, ((top, bottom), (left, right)))
    return img, m


@pytest.mark.parametrize("pad", [(0, 0, 0, 20), (12, 0, 6, 0), (3, 9, 0, 0)])
def test_a_rendered_bird_counts_once_and_its_background_not_at_all(pad):
    from ddb_core.method.masking import box_of, dilate

    judges = load_judges(REPO / JUDGES_DIR)
    images, backgrounds, masks, targets = [], [], [], []
    for k in range(8):  # every class on every place, in benchmark-like renders (a seed no judge saw)
        y, place = k % 2, (k // 2) % 2
        scene = render_scene(np.random.default_rng([7, k]), y, place, 64 + 8 * (k % 3))
        repaint = box_of(scene.mask) if k % 2 else dilate(scene.mask, 8)
        img, m = _pad(scene.image, repaint, *pad)
        bg, _ = _pad(scene.background, repaint, *pad)
        assert img.shape[0] != img.shape[1]
        images.append(img), backgrounds.append(bg), masks.append(m), targets.append(y)
    for img, bg, m, y in zip(images, backgrounds, masks, targets):
        assert judges.count_target_birds([img], [m], [y]) == 1
        assert judges.count_target_birds([bg], [m], [y]) == 0
        assert judges.count_target_birds([img], [m], [1 - y]) == 0  # the other class is not a target bird


def test_the_crop_is_square_inside_any_image():
    mask = np.zeros((50, 90), np.uint8)
    mask[40:50, 80:90] = 255  # at a corner
    top, left, h, w = crop_box(mask)
    assert h == w and 0 <= top and top + h <= 50 and 0 <= left and left + w <= 90
    assert judge_crop(np.zeros((50, 90, 3), np.uint8), mask).shape == (CROP, CROP, 3)
    assert crop_box(np.zeros((30, 70), np.uint8)) == (0, 20, 30, 30)  # no mask: the centre square


def test_masked_inversion_loss_ignores_everything_outside_the_mask():
    import torch

    from ddb_core.method.inversion import latent_mask, masked_denoising_loss

    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 4, 10, 14, generator=g), torch.randn(2, 4, 10, 14, generator=g)
    pixels = torch.zeros(2, 1, 40, 56)
    pixels[0, :, 8:20, 12:30] = 1
    pixels[1, :, 30:33, 50:52] = 1  # a thin object still has latent cells
    w = latent_mask(pixels, (10, 14))
    assert w[1].sum() > 0 and set(w.unique().tolist()) <= {0.0, 1.0}
    base = masked_denoising_loss(pred, target, w)
    changed = pred.clone()
    changed[w.expand_as(pred) == 0] += torch.randn(int((w.expand_as(pred) == 0).sum()), generator=g) * 10
    assert torch.allclose(masked_denoising_loss(changed, target, w), base)  # outside: unchanged
    changed[w.expand_as(pred) == 1] += 1.0
    assert not torch.allclose(masked_denoising_loss(changed, target, w), base)  # inside: it counts
    assert masked_denoising_loss(pred, target, torch.zeros_like(w)) == 0  # an empty mask adds nothing


def test_inversion_inside_the_mask_needs_masks_and_learns_on_any_size(tiny_pipe_factory):
    from ddb_core.method.inversion import InversionConfig, learn_token

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (48, 80, 3), dtype=np.uint8), rng.integers(0, 255, (70, 52, 3), dtype=np.uint8)]
    masks = [np.zeros(im.shape[:2], np.uint8) for im in imgs]
    masks[0][10:30, 20:50] = 255
    masks[1][30:60, 5:40] = 255
    cfg = InversionConfig(steps=2, batch_size=2)
    assert cfg.region == "mask"
    with pytest.raises(ConfigError, match="needs one object mask per image"):
        learn_token(tiny_pipe_factory(), imgs, "<w>", "bird", cfg=cfg)
    with pytest.raises(ConfigError, match="mask 1 is empty"):
        learn_token(tiny_pipe_factory(), imgs, "<w>", "bird", cfg=cfg, masks=[masks[0], np.zeros((70, 52), np.uint8)])
    res = learn_token(tiny_pipe_factory(), imgs, "<w>", "bird", cfg=cfg, masks=masks)
    assert len(res.loss_curve) == 2 and all(np.isfinite(res.loss_curve))


def test_target_birds_of_a_project_split_kept_and_pruned(candidates_project, capsys):
    from ddb_core.bench.judges import judged_target_birds
    from ddb_core.cli import main
    from ddb_core.curation.decisions import summary, thresholds

    judged = judged_target_birds(candidates_project)
    counts = summary(candidates_project, thresholds(candidates_project), method="ddb")
    assert set(judged) == set(counts)
    for d, v in judged.items():
        assert v["kept"]["n"] == counts[d]["kept"] and v["kept"]["n"] + v["pruned"]["n"] == counts[d]["candidates"]
        assert 0 <= v["kept"]["target_bird"] <= v["kept"]["n"] and 0 <= v["pruned"]["target_bird"] <= v["pruned"]["n"]
    assert main(["bench", "target-birds", "-p", str(candidates_project.root), "--no-docs"]) == 0
    out = capsys.readouterr().out
    assert "| direction | kept | kept: target birds |" in out and "0->1" in out


def test_a_projects_candidates_export_for_labelling_and_are_checked_once_labelled(candidates_project, tmp_path, capsys):
    import csv

    from ddb_core.bench.eye_check import write_labels
    from ddb_core.cli import main

    out = tmp_path / "set"
    assert main(["bench", "eye-check", "--export", str(candidates_project.root), "--set", str(out)]) == 0
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == candidates_project.db["candidates"].count and all(r["eye"] == "" for r in rows)
    assert (out / "sheet-1.png").is_file() and all((out / r["file"]).is_file() and (out / r["mask"]).is_file() for r in rows)
    assert main(["bench", "eye-check", "--set", str(out), "--no-docs"]) == 2  # unlabelled rows are named, not counted
    assert "eye must be one of" in capsys.readouterr().err
    write_labels(out, {int(r["candidate"]): ("bird", "no")[k % 2] for k, r in enumerate(rows)})
    assert main(["bench", "eye-check", "--set", str(out), "--no-docs"]) == 0
    assert "agreement with the eyes" in capsys.readouterr().out
    # labels are never written over by another export
    assert main(["bench", "eye-check", "--export", str(candidates_project.root), "--set", str(out)]) == 2


def test_a_grids_two_directions_become_one_set_numbered_on_and_each_image_kept(tmp_path):
    import csv

    from PIL import Image

    from ddb_core.bench.eye_check import grid_items, write_set

    rng = np.random.default_rng(1)
    shapes = [(40, 56), (48, 36)]  # not square, and the directions of different sizes

    def direction(h, w, n):
        ims = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]
        ms = [np.zeros((h, w), np.uint8) for _ in range(n)]
        for m in ms:
            m[h // 4:h // 2, w // 3:w // 2] = 255
        return ims, ms, ["land" if k % 2 else "water" for k in range(n)]

    (a_im, a_m, a_bg), (b_im, b_m, b_bg) = direction(*shapes[0], 30), direction(*shapes[1], 5)
    items = grid_items(1, 0, 1, a_im, a_m, a_bg)  # 30 made, the first 24 taken
    items += grid_items(len(items) + 1, 1, 0, b_im, b_m, b_bg)
    assert [r["candidate"] for r in items] == list(range(1, 30))
    out = write_set(tmp_path / "set", items, {})
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 29 and rows[24]["source_label"] == "1" and rows[1]["background"] == "land"
    # every image is its own, at its own size (none written over another)
    for r, item in zip(rows, items):
        saved = np.asarray(Image.open(out / r["file"]))
        assert saved.shape == item["image"].shape and np.array_equal(saved, item["image"])


def test_two_sets_are_labelled_blind_and_the_labels_go_back_to_their_own_set(tmp_path, capsys):
    import csv
    import json

    from ddb_core.bench.eye_check import read_labels, write_set
    from ddb_core.cli import main

    rng = np.random.default_rng(0)

    def items(h, w, n):  # not square, and the two sets of different sizes
        out = []
        for k in range(n):
            m = np.zeros((h, w), np.uint8)
            m[h // 4:h // 2, w // 4:w // 2] = 255
            out.append({"candidate": k + 1, "source_label": k % 2, "target_label": 1 - k % 2,
                        "image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "mask": m})
        return out

    a, b = write_set(tmp_path / "a", items(40, 56, 5), {}), write_set(tmp_path / "b", items(48, 36, 4), {})
    twice = items(40, 56, 2)
    twice[1]["candidate"] = 1  # two images under one number would overwrite each other
    with pytest.raises(ConfigError, match="share a candidate number"):
        write_set(tmp_path / "twice", twice, {})
    out = tmp_path / "blind"
    assert main(["bench", "eye-check", "--blind", str(a), "--out", str(out)]) == 2  # one set is blind to nothing
    assert "at least two sets" in capsys.readouterr().err
    assert main(["bench", "eye-check", "--blind", str(a), str(b), "--out", str(out), "--seed", "3"]) == 0
    with open(out / "blind.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and set(rows[0]) == {"n", "direction", "eye"}  # nothing names the set
    key = json.loads((out / "key.json").read_text())
    assert sorted(key["numbers"].values()) == sorted([[str(a), k] for k in range(1, 6)] + [[str(b), k] for k in range(1, 5)])
    assert [key["numbers"][r["n"]] for r in rows] != [[str(a), k] for k in range(1, 6)] + [[str(b), k] for k in range(1, 5)]
    assert (out / "sheet-1.png").is_file()
    # a label the sheets do not know is named; nothing is written into the sets
    rows[0]["eye"] = "maybe"
    for r in rows[1:]:
        r["eye"] = "bird" if key["numbers"][r["n"]][0] == str(a) else "no"

    def save():
        with open(out / "blind.csv", "w", newline="") as f:
            wr = csv.DictWriter(f, ["n", "direction", "eye"])
            wr.writeheader()
            wr.writerows(rows)

    save()
    assert main(["bench", "eye-check", "--unblind", str(out)]) == 2
    assert "row 2: eye must be one of" in capsys.readouterr().err
    assert all(r["eye"] == "" for r in csv.DictReader(open(a / "labels.csv")))
    rows[0]["eye"] = "bird" if key["numbers"][rows[0]["n"]][0] == str(a) else "no"
    save()
    assert main(["bench", "eye-check", "--unblind", str(out)]) == 0
    assert {r["eye"] for r in read_labels(a)} == {"bird"} and {r["eye"] for r in read_labels(b)} == {"no"}
    assert "labelled blind" in json.loads((a / "set.json").read_text())["blind"]
    # labelled sets are not mixed again
    assert main(["bench", "eye-check", "--blind", str(a), str(b), "--out", str(tmp_path / "again")]) == 2
    # a model card finds the blind set made from its weights by their fingerprint, and counts its birds
    from ddb_core.bench.eye_check import blind_counts

    meta = json.loads((a / "set.json").read_text())
    meta["made_from"] = "the grid's candidates of `bench inpainter` (model m, weights sha256 0123456789ab\u2026)"
    (a / "set.json").write_text(json.dumps(meta))
    found = blind_counts("0123456789abcdef", root=tmp_path)
    assert found == {"sets": [a.as_posix()], "seeds": [None], "birds": {"0->1": (3, 3), "1->0": (2, 2)}}
    # the sets of several generation seeds made from the same weights are pooled
    meta_b = json.loads((b / "set.json").read_text())
    meta_b["made_from"] = "the grid's candidates of `bench inpainter` (the first 24, seed 2, box; weights sha256 0123456789ab\u2026)"
    (b / "set.json").write_text(json.dumps(meta_b))
    meta["made_from"] = "the grid's candidates of `bench inpainter` (the first 24, seed 1, box; weights sha256 0123456789ab\u2026)"
    (a / "set.json").write_text(json.dumps(meta))
    first_launch = tmp_path / "first-launch"  # a project's candidates from the same weights are not the card's val grids
    shutil.copytree(b, first_launch)
    (first_launch / "set.json").write_text(json.dumps({**meta_b, "made_from": "the app's first launch (weights sha256 "
                                                       "0123456789ab\u2026)"}))
    assert len(read_labels(first_launch)) == len(read_labels(b))  # a labelled blind set, left out for what it is
    found = blind_counts("0123456789abcdef", root=tmp_path)
    assert found["sets"] == [a.as_posix(), b.as_posix()] and found["seeds"] == [1, 2]
    in_b = [f"{r['source_label']}->{r['target_label']}" for r in read_labels(b)]  # all labelled "no"
    assert found["birds"] == {"0->1": (3, 3 + in_b.count("0->1")), "1->0": (2, 2 + in_b.count("1->0"))}
    assert in_b.count("0->1") > 0 and in_b.count("1->0") > 0
    assert blind_counts("ffffffffffff", root=tmp_path) is None


def test_inversion_counts_its_loss_in_the_object_not_the_repaint_region(tmp_path):
    from ddb_core.pipeline.generation import inversion_masker
    from ddb_core.method.masking import GrabCutMasker, ProvidedMasker

    box = ProvidedMasker(lambda p: tmp_path / p, shape="box", dilate_radius=4)
    tight = inversion_masker(box)
    assert isinstance(tight, ProvidedMasker) and tight.shape == "mask" and tight.dilate_radius == 0
    assert tight.resolve("a.png") == tmp_path / "a.png"
    grown = GrabCutMasker(dilate_radius=3)
    assert inversion_masker(grown).dilate_radius == 0 and grown.dilate_radius == 3  # the project's masker is untouched
    plain = ProvidedMasker(lambda p: tmp_path / p)
    assert inversion_masker(plain) is plain


def test_repaint_masks_and_judge_crops_on_images_of_any_size():
    from ddb_core.bench.judges import mask_of
    from ddb_core.method.inversion import square_masks, square_pixels

    for h, w in ((48, 80), (90, 36)):
        obj = np.zeros((h, w), np.uint8)
        obj[h // 3:h // 3 + 8, w // 4:w // 4 + 12] = 255
        box, grown = mask_of("box", obj), mask_of("object+8px", obj)
        assert box.shape == grown.shape == (h, w) and (obj <= box).all() and (obj <= grown).all()
        assert (box >= 128).sum() > (obj >= 128).sum() and (grown >= 128).sum() > (obj >= 128).sum()
        assert mask_of("object", obj) is obj
        assert judge_crop(np.zeros((h, w, 3), np.uint8), box).shape == (CROP, CROP, 3)
        # the inversion's masks are cut exactly as its images are
        img = np.zeros((h, w, 3), np.uint8)
        img[obj >= 128] = 255
        px, m = square_pixels([img], 32), square_masks([obj], 32)
        assert px.shape == (1, 3, 32, 32) and m.shape == (1, 1, 32, 32)
        assert torch_equal((px[0, 0] > 0).float(), m[0, 0])
    with pytest.raises(ConfigError, match="mask shape"):
        mask_of("circle", np.zeros((4, 6), np.uint8))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_the_eye_check_counts_the_judges_verdicts_within_each_eye_label(tmp_path):
    import csv

    from PIL import Image

    from ddb_core.bench.eye_check import FIELDS, eye_check, eye_check_markdown, read_labels
    from ddb_core.method.masking import box_of

    def write(rows):
        with open(tmp_path / "labels.csv", "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows(rows)

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = []
    for k in range(6):  # real birds labelled "bird", their backgrounds "no"; every image its own non-square size
        y = k % 2
        scene = render_scene(np.random.default_rng([11, k]), y, k // 2 % 2, 64 + 8 * (k % 3))
        bird = k < 3
        img, m = _pad(scene.image if bird else scene.background, box_of(scene.mask), 0, 0, 4 * k + 2, 0)
        Image.fromarray(img).save(tmp_path / "images" / f"{k}.png")
        Image.fromarray(m).save(tmp_path / "masks" / f"{k}.png")
        rows.append({"file": f"images/{k}.png", "mask": f"masks/{k}.png", "candidate": k, "source_label": 1 - y,
                     "target_label": y, "eye": "bird" if bird else "no"})
    write(rows)
    res = eye_check(tmp_path, load_judges(REPO / JUDGES_DIR))
    d = res["directions"]
    assert sum(v["n"] for v in d.values()) == 6 and sum(v["bird"] for v in d.values()) == 3
    assert sum(v["judges_bird"] for v in d.values()) == 3 and sum(v["judges_no"] for v in d.values()) == 0
    assert all(v["agree_strict"] == 1.0 for v in d.values())
    assert "| 1->0 |" in eye_check_markdown(res, "cmd") and "By the source image's background" not in eye_check_markdown(res, "cmd")
    # a set that records each source's background is split by it too
    places = ["land", "water", "water", "land", "land", "water"]
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS + ["background"])
        w.writeheader()
        w.writerows({**r, "background": b} for r, b in zip(rows, places))
    split = eye_check(tmp_path, load_judges(REPO / JUDGES_DIR))["directions"]
    assert sum(b["n"] for v in split.values() for b in v["by_background"].values()) == 6
    assert sum(v["by_background"].get("land", {}).get("bird", 0) for v in split.values()) == 1  # image 0 alone
    assert sum(v["by_background"].get("water", {}).get("bird", 0) for v in split.values()) == 2
    write(rows)
    # a bad label and a path outside the set are named with their row
    rows[4]["eye"] = "maybe"
    write(rows)
    with pytest.raises(ConfigError, match="row 6: eye must be one of"):
        read_labels(tmp_path)
    rows[4]["eye"], rows[1]["file"] = "no", "../x.png"
    write(rows)
    with pytest.raises(ConfigError, match="row 3: file"):
        read_labels(tmp_path)


def test_the_shipped_blind_labels_are_the_labels_of_their_sets():
    import csv

    from ddb_core.bench.eye_check import EYE_SETS, read_labels

    blinds = sorted((REPO / EYE_SETS).glob("blind-*"))
    assert blinds, "the blind-labelled sets ship with their sheets"
    for folder in blinds:
        key = json.loads((folder / "key.json").read_text())
        with open(folder / "blind.csv", newline="") as f:
            blind = {r["n"]: r for r in csv.DictReader(f)}
        if not any(r["eye"] for r in blind.values()):  # a sitting not held yet: its sets are unlabelled as well
            for s in key["sets"]:
                with open(REPO / s / "labels.csv", newline="") as f:
                    assert not any(r["eye"] for r in csv.DictReader(f)), f"{s} labelled outside its blind sitting"
            continue
        sets = {s: {int(r["candidate"]): r for r in read_labels(REPO / s)} for s in key["sets"]}
        assert len(blind) == len(key["numbers"]) == sum(len(v) for v in sets.values())
        for n, (s, cand) in key["numbers"].items():
            row = sets[s][int(cand)]
            assert blind[n]["eye"] == row["eye"]
            assert blind[n]["direction"] == f"{row['source_label']}->{row['target_label']}"
        assert all("labelled blind" in json.loads((REPO / s / "set.json").read_text())["blind"] for s in sets)


def test_the_shipped_eye_labels_cover_every_candidate_of_their_set():
    from ddb_core.bench.eye_check import EYE_SETS, LABELS, read_labels

    rows = read_labels(REPO / EYE_SETS / "first-launch")
    assert len(rows) == 80 and {r["eye"] for r in rows} <= set(LABELS)
    assert {(r["source_label"], r["target_label"]) for r in rows} == {(0, 1), (1, 0)}


def test_a_headless_negative_is_the_same_scene_with_the_birds_body_alone():
    from ddb_core.bench.judges import OPTIONAL_NEGATIVE_KINDS, negative_kind_of

    for k in range(6):  # both classes, both places, two sizes
        y, place, size = k % 2, (k // 2) % 2, 64 + 16 * (k % 2)
        whole = render_scene(np.random.default_rng([5, k]), y, place, size)
        body = render_scene(np.random.default_rng([5, k]), y, place, size, body_only=True)
        assert np.array_equal(whole.background, body.background)  # the same draws: the same scene
        inside, in_body = whole.mask >= 128, body.mask >= 128
        assert in_body.sum() > 0 and not (in_body & ~inside).any()  # the body lies in the bird
        assert in_body.sum() < 0.9 * inside.sum()  # neck, head, bill, tail or legs are gone
    # the optional kinds are rendered only when asked for, and the default set is unchanged by them
    kinds = ("background", "headless", "smeared")
    assert set(OPTIONAL_NEGATIVE_KINDS) == {"headless", "smeared"}
    d = render_judge_set(2, 48, kinds=kinds)
    assert d["crops"].shape == (48, CROP, CROP, 3)
    assert [negative_kind_of(i, kinds) for i in range(16)].count("headless") == 4
    assert (d["present"] == np.array([negative_kind_of(i, kinds) is None for i in range(48)])).all()
    assert np.array_equal(render_judge_set(0, 16)["crops"], render_judge_set(0, 16, kinds=JudgeTrainConfig().negatives)["crops"])
    with pytest.raises(ConfigError, match="negative kinds must be among"):
        render_judge_set(0, 8, kinds=("background", "wings"))


def test_two_judges_are_compared_with_the_eyes_set_by_set(tmp_path):
    import csv

    from PIL import Image

    from ddb_core.bench.eye_check import FIELDS, eye_agreement, eye_agreement_markdown
    from ddb_core.method.masking import box_of

    sets = []
    for s in range(2):  # two sets of non-square images of several sizes: real birds "bird", backgrounds "no"
        folder = tmp_path / f"set{s}"
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        rows = []
        for k in range(4):
            y = k % 2
            scene = render_scene(np.random.default_rng([13, s, k]), y, k // 2, 64 + 8 * k)
            bird = (k + s) % 2 == 0
            img, m = _pad(scene.image if bird else scene.background, box_of(scene.mask), 0, 0, 0, 6 + 2 * k)
            Image.fromarray(img).save(folder / "images" / f"{k}.png")
            Image.fromarray(m).save(folder / "masks" / f"{k}.png")
            rows.append({"file": f"images/{k}.png", "mask": f"masks/{k}.png", "candidate": k, "source_label": 1 - y,
                         "target_label": y, "eye": "bird" if bird else "no"})
        with open(folder / "labels.csv", "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows(rows)
        sets.append(folder)
    res = eye_agreement([REPO / JUDGES_DIR], {"val": [sets[0]], "held out": [sets[1]]})
    shipped = res["judges"][str(REPO / JUDGES_DIR)]
    for folder in sets:
        c = shipped["sets"][str(folder)]
        assert c["n"] == 4 and c["bird"] == 2 and c["no"] == 2
        assert c["agree"] == 4 and c["judges_bird"] == 2 and c["judges_no"] == 0
    assert shipped["pooled"]["val"]["n"] == 4 and shipped["pooled"]["held out"]["agree"] == 4
    md = eye_agreement_markdown(res, "cmd")
    assert "| set0 | val | 4 | 100% |" in md and "**all held out**" in md


def test_eye_pool_sums_each_groups_sets_per_direction_and_background(tmp_path, capsys):
    import csv
    import shutil

    from ddb_core.bench.eye_check import EYE_SETS, eye_pool, eye_pool_markdown
    from ddb_core.cli import main

    sets = [REPO / EYE_SETS / n for n in ("val-window-15", "val-window-15-seed1", "val-shipped-seed2")]
    res = eye_pool({"a": sets[:2], "b": sets[2:]})
    for g, members in (("a", sets[:2]), ("b", sets[2:])):
        rows = [r for s in members for r in csv.DictReader(open(s / "labels.csv", newline=""))]
        pooled = res["groups"][g]["pooled"]
        for d in ("0->1", "1->0"):
            mine = [r for r in rows if f"{r['source_label']}->{r['target_label']}" == d]
            assert pooled[d]["n"] == len(mine) and pooled[d]["bird"] == sum(r["eye"] == "bird" for r in mine)
            for bg in ("land", "water"):
                assert pooled[d]["by_background"][bg]["bird"] == sum(r["eye"] == "bird" and r["background"] == bg for r in mine)
    md = eye_pool_markdown(res, "cmd", "t")
    a01 = res["groups"]["a"]["pooled"]["0->1"]
    assert f"**{a01['bird']} / {a01['unclear']} / {a01['no']} of {a01['n']}**" in md
    with pytest.raises(ConfigError, match="given twice"):
        eye_pool({"a": sets[:1], "b": sets[:1]})
    # an unlabelled row is named, and nothing is written to docs
    bad = tmp_path / "bad"
    shutil.copytree(sets[0], bad)
    text = (bad / "labels.csv").read_text().splitlines()
    text[3] = text[3].replace(",bird,", ",,").replace(",unclear,", ",,")
    (bad / "labels.csv").write_text("\n".join(text) + "\n")
    assert main(["bench", "eye-pool", "--group", "x", str(bad), "--no-docs"]) != 0
    assert "row 4" in capsys.readouterr().err
    assert main(["bench", "eye-pool", "--group", "x", "--no-docs"]) != 0
    assert "at least one labelled set" in capsys.readouterr().err
