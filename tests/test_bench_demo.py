"""The end-to-end demo benchmark, its data seeds, ablations, calibration and SCGS, on a tiny benchmark
and a tiny random SD model."""

import json
from dataclasses import replace

import pytest

from ddb_core.bench.demo import DemoBenchConfig, bench_demo
from ddb_core.bench.ablations import bench_pruning, bench_ti, ti_markdown
from ddb_core.bench.scgs import bench_scgs, scgs_markdown
from ddb_core.bench.seeds import demo_markdown
from ddb_core.project.store import Project
from ddb_core.classifiers.training import TrainConfig


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

    out = tmp_path_factory.mktemp("tiny-sd") / "model"
    build_pipeline(MicroSDConfig(sample_size=32)).save_pretrained(out)
    return out


def tiny_cfg(model, **kw) -> DemoBenchConfig:
    return DemoBenchConfig(seeds=(0, 1), erm=TrainConfig(image_size=32, epochs=1, batch_size=16), k=4, ti_size=3,
                           ti_steps=2, inpaint_steps=2, ig_steps=4, retrain_epochs=1, gamma_grid=(1.0, 2.0),
                           model=str(model), jtt_epochs_grid=(1,), lambda_grid=(2.0, 5.0), dfr_fits=3,
                           baselines=("jtt", "dfr"), data={"image_size": 32, "n_train": 48, "n_val": 16, "n_test": 16,
                                                          "workers": 1}, **kw)


def test_bench_demo_over_data_seeds_pairs_every_method_with_its_own_seeds_erm(tiny_model_dir, tmp_path):
    cfg = replace(tiny_cfg(tiny_model_dir, ablations=True), gamma_grid=(1.0,))  # per-class γ: see test_retraining
    doc, js = tmp_path / "benchmarks.md", tmp_path / "demo.json"
    res = bench_demo(cfg, str(tmp_path / "work"), data_seeds=(0, 1), doc=doc, json_path=js)
    methods = [r["method"] for r in res["methods"]]
    assert methods == ["ERM", "JTT", "DFR", "DDB", "DDB without pruning", "DDB with the plain prompt"]
    # Two data seeds × two training seeds: a mean with a 95% interval over the data seeds' means.
    for r in res["methods"]:
        wga = r["wga"]
        assert wga["n_data"] == 2 and wga["n_values"] == 4 and wga["lo"] <= wga["mean"] <= wga["hi"]
    comps = {d["comparison"]: d for d in res["differences"]}
    assert set(comps) == {"DDB − ERM", "DDB − JTT", "DDB − DFR", "pruning − no pruning", "token − plain prompt"}
    # A paired difference is the mean of the per-pair differences of the two methods' test figures.
    pairs = []
    for pd in res["per_data_seed"]:
        by = {r["method"]: r for r in pd["rows"]}
        pairs += [a - b for a, b in zip(by["DDB"]["wga"]["values"], by["JTT"]["wga"]["values"])]
    assert comps["DDB − JTT"]["wga"]["mean"] == pytest.approx(sum(pairs) / len(pairs))
    assert set(res["goals"]) == {"ddb_wga_ge_erm_plus_25", "ddb_wga_ge_erm_plus_25_interval", "ddb_avg_within_5_of_erm"}
    # Every data seed has its own project; every seed s of DDB and DFR starts from ERM seed s.
    for pd in res["per_data_seed"]:
        project = Project.open(tmp_path / "work" / f"demo-d{pd['data_seed']}")
        erm = {int(k): v for k, v in pd["erm_ids"].items()}
        assert sorted(erm) == [0, 1] and len(set(erm.values())) == 2
        by = {r["method"]: r for r in pd["rows"]}
        for method in ("DDB", "DDB without pruning"):
            for seed, mid in zip(by[method]["seeds"], by[method]["model_ids"]):
                assert project.model(mid)["config"]["plan"]["init_model_id"] == erm[seed]
        for seed, mid in zip(by["DFR"]["seeds"], by["DFR"]["model_ids"]):
            assert project.model(mid)["config"]["erm_model_id"] == erm[seed]
        # JTT: T and λ_up chosen on val among the grid; each seed's identification model has that seed.
        search = pd["tuning"]["JTT"]["search"]
        assert [(t["T"], t["lambda_up"]) for t in search] == [(1, 2.0), (1, 5.0)] and sum(t["chosen"] for t in search) == 1
        for seed, mid in zip(by["JTT"]["seeds"], by["JTT"]["model_ids"]):
            ident = project.model(project.model(mid)["config"]["plan"]["jtt"]["identification_model"])
            assert ident["config"]["seed"] == seed
        # γ per class over the grid (one value here): the chosen run is seed 0's model.
        gs = by["DDB"]["gamma_search"]
        assert [tuple(t["gammas"]) for t in gs] == [(1.0, 1.0)] and gs[0]["chosen"]
        assert by["DDB"]["model_ids"][0] == gs[0]["model_id"]
    # The plain-prompt ablation shares the main project's ERM models but has no token.
    plain = Project.open(tmp_path / "work" / "demo-d0-plain")
    assert plain.db.execute("select count(*) from tokens").fetchone()[0] == 0
    text = doc.read_text()
    assert "over 2 data seeds" in text and "| DDB − JTT |" in text and "95% t-interval" in text
    assert ("no difference shown" in text) or ("higher" in text) or ("lower" in text)
    assert json.loads(js.read_text())["data_seeds"] == [0, 1]
    # Run again: everything is reused (no new model), the same figures.
    n_models = {d: len(Project.open(tmp_path / "work" / f"demo-d{d}").models()) for d in (0, 1)}
    again = bench_demo(cfg, str(tmp_path / "work"), data_seeds=(0, 1))
    assert {d: len(Project.open(tmp_path / "work" / f"demo-d{d}").models()) for d in (0, 1)} == n_models
    assert again["methods"] == res["methods"] and again["differences"] == res["differences"]
    # One data seed: the interval is over the training seeds only, and the text says so.
    one = bench_demo(cfg, str(tmp_path / "work"), data_seeds=(1,))
    assert one["methods"][0]["wga"]["n_data"] == 1 and "says nothing about another draw" in demo_markdown(one)


def test_bench_demo_one_data_seed_and_its_ablations(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, per_class_gamma=False)
    doc = tmp_path / "benchmarks.md"
    res = bench_demo(cfg, str(tmp_path / "work"), doc=doc, json_path=tmp_path / "demo.json")
    pd = res["per_data_seed"][0]
    assert [r["method"] for r in pd["rows"]] == ["ERM", "JTT", "DFR", "DDB"]
    assert all(len(r["model_ids"]) == 2 and 0 <= r["wga"]["mean"] <= 1 for r in pd["rows"])
    assert pd["pruning"]["0->1"]["candidates"] == 4 and pd["pruning"]["1->0"]["candidates"] == 4
    assert {"erm (seed 0)", "generation", "scoring", "retrain ddb"} <= set(pd["stage_seconds"])
    # every stage of the demo build is a run of the project, as the command line's stages are
    runs = Project.open(tmp_path / "work" / "demo-d0").runs()
    assert {"select", "invert", "mask", "generate", "score"} <= {r["stage"] for r in runs if r["status"] == "done"}
    text = doc.read_text()
    assert "End-to-end demo benchmark" in text and "| DDB |" in text and json.loads((tmp_path / "demo.json").read_text())
    # One γ for both classes, chosen by val WGA among the grid; the chosen run is seed 0's model.
    search = pd["rows"][-1]["gamma_search"]
    assert [t["gamma"] for t in search] == [1.0, 2.0] and "γ search for DDB" in text
    assert pd["rows"][-1]["model_ids"][0] == next(t["model_id"] for t in search if t["chosen"])
    # The figures name the weights that produced them.
    from ddb_core.method.inpainting import model_fingerprint

    assert len(res["model_sha256"]) == 12 and f"weights sha256 {res['model_sha256']}" in text
    (tiny_model_dir / "unet" / "extra.safetensors").write_bytes(b"x")
    assert model_fingerprint(str(tiny_model_dir)) != res["model_sha256"]
    (tiny_model_dir / "unet" / "extra.safetensors").unlink()
    assert model_fingerprint(str(tiny_model_dir)) == res["model_sha256"]
    # The pruning ablation reuses the pruned retraining and adds the unpruned one.
    pr = bench_pruning(cfg, str(tmp_path / "work"))
    assert [r["method"] for r in pr["rows"]] == ["DDB with pruning", "DDB without pruning"]
    assert pr["rows"][0]["model_ids"] == pd["rows"][-1]["model_ids"]
    # Each candidate is judged once, as kept or pruned, by the oracle of the first seed.
    for d, v in pr["per_direction"].items():
        assert pr["judged"][d]["kept"]["n"] == v["kept"] and pr["judged"][d]["pruned"]["n"] == v["candidates"] - v["kept"]
        assert 0 <= pr["judged"][d]["kept"]["judged_target"] <= v["kept"]
    judge = Project.open(tmp_path / "work" / "demo-d0").model(pr["judge_model"])
    assert judge["role"] == "oracle"
    from ddb_core.bench.ablations import pruning_markdown

    assert "kept: judged target" in pruning_markdown(pr)
    assert "Candidates per direction" in demo_markdown(res)
    # The textual-inversion ablation: size 0 is the plain prompt, each size its own project copy.
    ti = bench_ti(replace(cfg, seeds=(0,)), sizes=(0, 3), k=4, workdir=str(tmp_path / "work"))
    assert [r["ti_size"] for r in ti["rows"]] == [0, 3] and all(r["candidates"] == 8 for r in ti["rows"])
    p0 = Project.open(tmp_path / "work" / "demo-d0-ti0")
    assert p0.db.execute("select count(*) from tokens").fetchone()[0] == 0
    assert {r[0] for r in p0.db.execute("select prompt from candidates")} == {"a photo of a bird"}
    assert "| 3 |" in ti_markdown(ti) and "± 0.0" not in ti_markdown(ti) and "One training seed" in ti_markdown(ti)
    assert "γ search for TI set size 3" in ti_markdown(ti) and "chosen by val WGA among 1, 2" in ti_markdown(ti)
    # Which TI images make a token that draws the target bird: the demo built per set on its own copy, every
    # candidate judged by the target-bird judges, DDB retrained; the first data seed's project is left as it was.
    from ddb_core.bench.ablations import bench_ti_source, ti_source_markdown

    n_cands = Project.open(tmp_path / "work" / "demo-d0").db.execute("select count(*) from candidates").fetchone()[0]
    ts = bench_ti_source(replace(cfg, seeds=(0,)), str(tmp_path / "work"), sources=("none", "random", "val_minority"), k=4)
    assert [r["source"] for r in ts["rows"]] == ["none", "random", "val_minority"]
    for r in ts["rows"]:
        assert set(r["target_birds"]) == {"0->1", "1->0"} and len(r["model_ids"]) == 1
        for d, v in r["target_birds"].items():  # each candidate judged once, as kept or pruned
            assert v["kept"]["n"] == r["per_direction"][d]["kept"] and v["kept"]["n"] + v["pruned"]["n"] == 4
            assert 0 <= v["kept"]["target_bird"] <= v["kept"]["n"]
    assert Project.open(tmp_path / "work" / "demo-d0").db.execute("select count(*) from candidates").fetchone()[0] == n_cands
    plain = Project.open(tmp_path / "work" / "demo-d0-tisrc-none")
    assert plain.db.execute("select count(*) from tokens").fetchone()[0] == 0
    # the val minority-group tokens learned on val images of each class's minority group, the others on train images
    runs = {n: [json.loads(r["config"]) for r in Project.open(tmp_path / "work" / f"demo-d0-tisrc-{n}").runs()
                if r["stage"] == "select" and r["status"] == "done"] for n in ("random", "val_minority")}
    assert runs["random"][-1]["ti_source"] == "random" and runs["val_minority"][-1]["ti_source"] == "val_minority"
    md = ti_source_markdown(ts)
    assert "| random train | " in md and "| val minority-group | " in md and "target birds (kept / all)" in md


def test_bench_scgs_follows_its_paper_and_reuses_the_main_tables_erm_and_jtt(tiny_model_dir, tmp_path):
    cfg = replace(tiny_cfg(tiny_model_dir, per_class_gamma=False), seeds=(0,))  # one training seed keeps it short
    main = bench_demo(cfg, str(tmp_path / "work"))["per_data_seed"][0]
    project = Project.open(tmp_path / "work" / "demo-d0")
    n_models = len(project.models())
    doc = tmp_path / "benchmarks.md"
    res = bench_scgs(cfg, str(tmp_path / "work"), doc=doc, shares=(0.2, 0.4), max_variants=3)
    assert [r["method"] for r in res["rows"]] == ["ERM", "JTT", "SCGS", "JTT+SCGS"]
    assert res["rows"][0]["model_ids"] == main["rows"][0]["model_ids"]
    assert res["rows"][1]["model_ids"] == main["rows"][1]["model_ids"]
    # Each: one run per share (seed 0), the best by val chosen (further seeds would train with the chosen share).
    assert len(project.models()) == n_models + 4
    for r in res["rows"][2:]:
        assert [t["share"] for t in r["share_search"]] == [0.2, 0.4] and sum(t["chosen"] for t in r["share_search"]) == 1
        small, large = r["share_search"]
        assert 0 < small["images"] <= large["images"]
        for mid in r["model_ids"]:  # ordinary samples on the union, trained from scratch
            plan = project.model(mid)["config"]["plan"]
            assert plan["objective"] == "ordinary samples" and plan["n_generated"] == r["images"]
    jtt = project.model(res["rows"][3]["model_ids"][0])["config"]["plan"]["jtt"]
    assert (jtt["jtt_epochs"], jtt["lambda_up"]) == (main["tuning"]["JTT"]["T"], main["tuning"]["JTT"]["lambda_up"])
    assert project.db.execute("select count(*) from candidates where method = 'scgs'").fetchone()[0] == large["images"]
    assert "| JTT+SCGS |" in doc.read_text() and "SCGS on the demo" in scgs_markdown(res)
    # The retraining recipe: one DDB retraining per (epochs, lr), every seed; the best mean val WGA is marked.
    from ddb_core.bench.ablations import bench_recipe, recipe_markdown

    n_models = len(project.models())
    rec = bench_recipe(cfg, str(tmp_path / "work"), recipes=((1, 1e-4), (2, 5e-4)), doc=doc)
    assert [(r["epochs"], r["lr"]) for r in rec["rows"]] == [(1, 1e-4), (2, 5e-4)]
    assert len(project.models()) == n_models + 2
    for r in rec["rows"]:
        assert len(r["val_wga"]) == 1 and r["val_wga_mean"] == pytest.approx(r["val_wga"][0])
    assert sum(r["chosen"] for r in rec["rows"]) == 1
    assert max(rec["rows"], key=lambda r: r["val_wga_mean"])["chosen"]
    md = recipe_markdown(rec)
    assert "**(best val)**" in md and "the retraining recipe" in doc.read_text()
    again = bench_recipe(cfg, str(tmp_path / "work"), recipes=((1, 1e-4), (2, 5e-4)))
    assert [r["model_ids"] for r in again["rows"]] == [r["model_ids"] for r in rec["rows"]]


def test_calibration_chooses_the_cheapest_recipe_meeting_the_val_targets(tmp_path):
    from ddb_core.bench.calibration import calibrate_demo, calibration_markdown
    from ddb_core.demo.data import DemoDataConfig

    demo = DemoDataConfig(image_size=32, n_train=48, n_val=16, n_test=16, workers=1)
    doc = tmp_path / "benchmarks.md"
    res = calibrate_demo((0,), str(tmp_path / "work"), ("resnet18_w32:1", "resnet18_w32:2"), doc=doc,
                         json_path=tmp_path / "calibration.json", demo=demo)
    assert [r["recipe"] for r in res["recipes"]] == ["resnet18_w32:1", "resnet18_w32:2"]
    for r in res["recipes"]:
        e, o = r["median"]["erm"], r["median"]["oracle"]
        assert r["qualifies"] == (e["val_wga"] <= 0.5 and e["val_mean_acc"] >= 0.85 and o["val_wga"] >= 0.85)
    qualifying = [r for r in res["recipes"] if r["qualifies"]]
    assert res["chosen"] == (min(qualifying, key=lambda r: r["cost_seconds"])["recipe"] if qualifying else None)
    assert "chosen on val" in doc.read_text() and json.loads((tmp_path / "calibration.json").read_text())["seeds"] == [0]
    # Run again: the models are reused, the same figures.
    again = calibrate_demo((0,), str(tmp_path / "work"), ("resnet18_w32:1", "resnet18_w32:2"), doc=None, json_path=None,
                           demo=demo, first_qualifying=True)
    assert all(r.get("skipped") or all(s["erm"]["reused"] for s in r["per_seed"]) for r in again["recipes"])
    first = next((k for k, r in enumerate(res["recipes"]) if r["qualifies"]), None)
    assert [bool(r.get("skipped")) for r in again["recipes"]] == [first is not None and k > first for k in range(2)]
    assert ("not trained" in calibration_markdown(again)) == (first == 0)
