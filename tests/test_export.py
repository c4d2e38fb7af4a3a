"""Exports: the curated ImageFolder tree with its manifest, and the reproducibility bundle."""

import csv
import json
import zipfile

from ddb_core import api
from ddb_core.curation.decisions import set_decision, set_thresholds


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


def test_an_export_never_writes_over_the_project_or_an_existing_file(candidates_project, tmp_path, capsys):
    import hashlib

    from ddb_core.cli import main

    p = candidates_project
    db = (p.root / "project.db").read_bytes()
    meta = sorted(p.dataset_root.glob("*.csv"))
    before = {m: hashlib.sha256(m.read_bytes()).hexdigest() for m in meta}
    for out in (p.root / "project.db", p.root / "models" / "x.zip", meta[0] if meta else p.dataset_root / "m.csv",
                p.root, p.root / "dataset"):
        assert main(["export", "-p", str(p.root), "bundle", "--out", str(out), "--force"]) != 0
        err = capsys.readouterr().err
        assert "export bundle --out" in err and "Traceback" not in err
    assert (p.root / "project.db").read_bytes()[:100] == db[:100] and api.review_index(p) is not None
    assert {m: hashlib.sha256(m.read_bytes()).hexdigest() for m in meta} == before
    # an existing file outside the project: only with --force
    target = tmp_path / "mine.zip"
    target.write_bytes(b"keep me")
    assert main(["export", "-p", str(p.root), "bundle", "--out", str(target)]) != 0
    assert "already exists" in capsys.readouterr().err and target.read_bytes() == b"keep me"
    assert main(["export", "-p", str(p.root), "bundle", "--out", str(target), "--force"]) == 0
    assert zipfile.is_zipfile(target)
    # a dataset folder: --force replaces only an earlier export
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    assert main(["export", "-p", str(p.root), "dataset", "--out", str(tmp_path / "notes"), "--force"]) != 0
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"
    assert main(["export", "-p", str(p.root), "dataset", "--out", str(tmp_path / "ds")]) == 0
    assert main(["export", "-p", str(p.root), "dataset", "--out", str(tmp_path / "ds"), "--force"]) == 0
    assert main(["export", "-p", str(p.root), "dataset", "--method", "bogus"]) != 0
    assert "no candidates of that method" in capsys.readouterr().err


def test_a_dataset_export_copies_only_regular_files_from_inside_the_dataset(candidates_project, tmp_path):
    import pytest

    from ddb_core.project.errors import ProjectError

    p = candidates_project
    rel = p.db.execute("select path from samples where split = 'train' order by id limit 1").fetchone()[0]
    image = p.dataset_path(rel)
    secret = p.root / "models" / "secret.bin"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(b"\x89PNG not really")
    original = image.read_bytes()  # the dataset is shared by the session's projects: put back afterwards
    image.unlink()
    image.symlink_to(secret)  # swapped for a link after import
    try:
        with pytest.raises(ProjectError, match="symbolic link"):
            api.export_dataset(p, str(tmp_path / "out"))
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out*"))
    finally:
        image.unlink()
        image.write_bytes(original)
