"""The end-to-end demo benchmark and its ablations, on a tiny benchmark and a tiny random SD model."""

import json
from dataclasses import replace

import pytest

from ddb_core.bench.demo import (DemoBenchConfig, bench_demo, bench_pruning, bench_scgs, bench_ti, demo_markdown,
                                 scgs_markdown, ti_markdown)
from ddb_core.store import Project
from ddb_core.training import TrainConfig


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from ddb_core.demo.micro_sd import MicroSDConfig, build_pipeline

    out = tmp_path_factory.mktemp("tiny-sd") / "model"
    build_pipeline(MicroSDConfig(sample_size=32)).save_pretrained(out)
    return out


def tiny_cfg(model) -> DemoBenchConfig:
    return DemoBenchConfig(seeds=(0, 1), erm=TrainConfig(image_size=32, epochs=1, batch_size=16), k=4, ti_size=3,
                           ti_steps=2, inpaint_steps=2, ig_steps=4, retrain_epochs=1, gamma_grid=(1.0, 2.0), model=str(model),
                           baselines=("jtt", "dfr", "scgs"), data={"image_size": 32, "n_train": 48, "n_val": 16, "n_test": 16,
                                                          "workers": 1})


def test_bench_demo_end_to_end_writes_the_table_and_resumes(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir)
    doc = tmp_path / "benchmarks.md"
    res = bench_demo(cfg, str(tmp_path / "work"), doc=doc, json_path=tmp_path / "demo.json")
    methods = [r["method"] for r in res["rows"]]
    assert methods == ["ERM", "JTT", "DFR", "SCGS", "JTT+SCGS", "DDB"]
    assert all(len(r["model_ids"]) == 2 and 0 <= r["wga"]["mean"] <= 1 for r in res["rows"])
    assert res["pruning"]["0->1"]["candidates"] == 4 and res["pruning"]["1->0"]["candidates"] == 4
    assert {"erm (seed 0)", "generation", "scoring", "retrain ddb"} <= set(res["stage_seconds"])
    text = doc.read_text()
    assert "End-to-end demo benchmark" in text and "| DDB |" in text and json.loads((tmp_path / "demo.json").read_text())
    # γ was chosen by val WGA among the grid; the chosen run is seed 0's model.
    search = res["rows"][-1]["gamma_search"]
    assert [t["gamma"] for t in search] == [1.0, 2.0] and "γ search for DDB" in text
    assert res["rows"][-1]["model_ids"][0] == next(t["model_id"] for t in search if t["chosen"])
    # The figures name the weights that produced them.
    from ddb_core.method.inpainting import model_fingerprint

    assert len(res["model_sha256"]) == 12 and f"weights sha256 {res['model_sha256']}" in text
    (tiny_model_dir / "unet" / "extra.safetensors").write_bytes(b"x")
    assert model_fingerprint(str(tiny_model_dir)) != res["model_sha256"]
    (tiny_model_dir / "unet" / "extra.safetensors").unlink()
    assert model_fingerprint(str(tiny_model_dir)) == res["model_sha256"]
    project = Project.open(tmp_path / "work" / "demo")
    n_models = len(project.models())
    # Run again: everything is reused (no new model), same table.
    again = bench_demo(cfg, str(tmp_path / "work"))
    assert len(Project.open(tmp_path / "work" / "demo").models()) == n_models
    assert [r["model_ids"] for r in again["rows"]] == [r["model_ids"] for r in res["rows"]]
    # The pruning ablation reuses the pruned retraining and adds the unpruned one.
    pr = bench_pruning(cfg, str(tmp_path / "work"))
    assert [r["method"] for r in pr["rows"]] == ["DDB with pruning", "DDB without pruning"]
    assert pr["rows"][0]["model_ids"] == res["rows"][-1]["model_ids"]
    # Each candidate is judged once, as kept or pruned, by the oracle of the first seed.
    for d, v in pr["per_direction"].items():
        assert pr["judged"][d]["kept"]["n"] == v["kept"] and pr["judged"][d]["pruned"]["n"] == v["candidates"] - v["kept"]
        assert 0 <= pr["judged"][d]["kept"]["judged_target"] <= v["kept"]
    judge = Project.open(tmp_path / "work" / "demo").model(pr["judge_model"])
    assert judge["role"] == "oracle"
    from ddb_core.bench.demo import pruning_markdown

    assert "kept: judged target" in pruning_markdown(pr)
    assert "Candidates per direction" in demo_markdown(res)
    # The textual-inversion ablation: size 0 is the plain prompt, each size its own project copy.
    ti = bench_ti(replace(cfg, seeds=(0,)), sizes=(0, 3), k=4, workdir=str(tmp_path / "work"))
    assert [r["ti_size"] for r in ti["rows"]] == [0, 3] and all(r["candidates"] == 8 for r in ti["rows"])
    p0 = Project.open(tmp_path / "work" / "demo-ti0")
    assert p0.db.execute("select count(*) from tokens").fetchone()[0] == 0
    assert {r[0] for r in p0.db.execute("select prompt from candidates")} == {"a photo of a bird"}
    assert "| 3 |" in ti_markdown(ti)
    assert "γ search for TI set size 3" in ti_markdown(ti) and "chosen by val WGA among 1, 2" in ti_markdown(ti)
    # Which TI images make a swapping token: every source judged on the same D_i images, nothing stored.
    from ddb_core.bench.demo import bench_ti_source, ti_source_markdown

    n_cands = Project.open(tmp_path / "work" / "demo").db.execute("select count(*) from candidates").fetchone()[0]
    ts = bench_ti_source(cfg, str(tmp_path / "work"), n=2)
    assert [r["source"] for r in ts["rows"]] == ["none", "high_loss", "random"]
    assert all(d["n"] == 2 and 0 <= d["judged_target"] <= 2 for r in ts["rows"] for d in r["directions"].values())
    assert set(ts["rows"][0]["directions"]) == {"0->1", "1->0"}
    assert Project.open(tmp_path / "work" / "demo").db.execute("select count(*) from candidates").fetchone()[0] == n_cands
    assert "| random train | " in ti_source_markdown(ts)


def test_bench_scgs_reuses_the_main_tables_erm_and_jtt(tiny_model_dir, tmp_path):
    cfg = replace(tiny_cfg(tiny_model_dir), baselines=("jtt", "dfr"))
    main = bench_demo(cfg, str(tmp_path / "work"))
    assert [r["method"] for r in main["rows"]] == ["ERM", "JTT", "DFR", "DDB"]
    n_models = len(Project.open(tmp_path / "work" / "demo").models())
    doc = tmp_path / "benchmarks.md"
    res = bench_scgs(cfg, str(tmp_path / "work"), doc=doc)
    assert [r["method"] for r in res["rows"]] == ["ERM", "JTT", "SCGS", "JTT+SCGS"]
    assert res["rows"][0]["model_ids"] == main["rows"][0]["model_ids"]
    assert res["rows"][1]["model_ids"] == main["rows"][1]["model_ids"]
    project = Project.open(tmp_path / "work" / "demo")
    # SCGS: the γ search (2 runs, seed 0) + seed 1; JTT+SCGS: two seeds; JTT identification reused
    assert len(project.models()) == n_models + 5
    assert project.db.execute("select count(*) from candidates where method = 'scgs'").fetchone()[0] > 0
    assert "| JTT+SCGS |" in doc.read_text() and "SCGS on the demo" in scgs_markdown(res)
    # The retraining recipe: one DDB retraining per (epochs, lr), every seed; the best mean val WGA is marked.
    from ddb_core.bench.demo import bench_recipe, recipe_markdown

    n_models = len(project.models())
    rec = bench_recipe(cfg, str(tmp_path / "work"), recipes=((1, 1e-4), (2, 5e-4)), doc=doc)
    assert [(r["epochs"], r["lr"]) for r in rec["rows"]] == [(1, 1e-4), (2, 5e-4)]
    assert len(Project.open(tmp_path / "work" / "demo").models()) == n_models + 4
    for r in rec["rows"]:
        assert len(r["val_wga"]) == 2 and r["val_wga_mean"] == pytest.approx(sum(r["val_wga"]) / 2)
    assert sum(r["chosen"] for r in rec["rows"]) == 1
    assert max(rec["rows"], key=lambda r: r["val_wga_mean"])["chosen"]
    md = recipe_markdown(rec)
    assert "**(best val)**" in md and "the retraining recipe" in doc.read_text()
    again = bench_recipe(cfg, str(tmp_path / "work"), recipes=((1, 1e-4), (2, 5e-4)))
    assert [r["model_ids"] for r in again["rows"]] == [r["model_ids"] for r in rec["rows"]]
