"""Exports: the curated ImageFolder tree with its manifest, and the reproducibility bundle."""

import csv
import json
import zipfile

from ddb_core import api
from ddb_core.decisions import set_decision, set_thresholds


def test_export_dataset_and_bundle(candidates_project):
    p = candidates_project
    set_thresholds(p, Psi={0: 0.0, 1: 0.0})  # nothing kept automatically
    ids = [r[0] for r in p.db.execute("select id from candidates order by id")]
    set_decision(p, ids[:2], "accept")
    out = api.export_dataset(p)
    root = p.root / "exports"
    assert out["generated_images"] == 2 and out["candidates"] == 8 and out["real_images"] == p.sample_count("train")
    tree = sorted(f.relative_to(out["path"]).as_posix() for f in __import__("pathlib").Path(out["path"]).rglob("*.png"))
    assert sum("generated-" in t for t in tree) == 2 and all(t.startswith("train/") for t in tree)
    rows = list(csv.DictReader(open(out["manifest"])))
    assert len(rows) == 8
    kept = [r for r in rows if r["decision"] == "kept"]
    assert [int(r["candidate_id"]) for r in kept] == ids[:2] and all(r["decided_by"] == "manual" for r in kept)
    assert all(r["file"] == "" for r in rows if r["decision"] == "pruned")
    target = p.db.execute("select target_label from candidates where id = ?", [ids[0]]).fetchone()[0]
    assert kept[0]["file"].startswith(f"train/{p.class_names[target]}/")
    b = api.reproducibility_bundle(p)
    with zipfile.ZipFile(b["path"]) as z:
        bundle = json.loads(z.read("bundle.json"))
        assert bundle["thresholds"]["Psi"]["0"] == 0.0 and bundle["models"][0]["sha256"]
        assert len(z.read("candidates-provenance.jsonl").splitlines()) == 8
    assert str(root) in b["path"]
