"""The project database's schema, one step per release that changed it (sqlite-utils ``Migrations``).

Each step is applied once, in order, and recorded in ``_sqlite_migrations`` under the set's name ``ddb_core``.
``store.Project`` applies the pending steps when it opens a project, and refuses a database written by a newer
release. A step is never edited once released: a change of schema is a new step.
"""

from __future__ import annotations

import json

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("ddb_core")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["samples"].create(
        {
            "id": int,
            "key": str,  # the dataset's own id of the image (its relative path for most formats)
            "path": str,  # image path relative to the dataset root
            "label": int,  # class index y
            "split": str,  # train / val / test
            "attr": int,  # spurious attribute index (place, gender, context); NULL if unknown
            "mask_path": str,  # ground-truth object mask, relative to the dataset root; NULL if none
            "erm_model_id": int,  # the model the next three columns were computed with
            "erm_loss": float,  # per-sample cross-entropy, deterministic evaluation transform
            "erm_probs": str,  # JSON list: softmax over classes
            "erm_pred": int,
        },
        pk="id",
        not_null={"key", "path", "label", "split"},
    )
    db["samples"].create_index(["key"], unique=True)
    db["samples"].create_index(["split", "label"])
    db["models"].create(
        {
            "id": int,
            "name": str,
            "role": str,  # erm / oracle / retrain / …
            "path": str,  # relative to the project folder
            "arch": str,
            "num_classes": int,
            "image_size": int,
            "sha256": str,
            "metrics": str,  # JSON: val/test group reports
            "config": str,  # JSON: the training config
            "run_id": int,
            "created_at": str,
        },
        pk="id",
    )
    db["runs"].create(
        {
            "id": int,
            "stage": str,
            "config": str,  # JSON of the full config
            "config_hash": str,
            "status": str,  # running / done / failed / cancelled
            "started_at": str,
            "finished_at": str,
            "seconds": float,
            "error": str,
            "result": str,  # JSON
        },
        pk="id",
    )


@migrations()
def m002_run_progress(db: sqlite_utils.Database) -> None:
    # Version 2: runs remember how far they got (done/total), so a UI can show a resumable run.
    db["runs"].add_column("progress_done", int)
    db["runs"].add_column("progress_total", int)


@migrations()
def m003_generation(db: sqlite_utils.Database) -> None:
    # Version 3: the generation and pruning stages.
    db["class_stats"].create({
        "id": int,
        "erm_model_id": int,
        "label": int,
        "mean_softmax": float,  # Psi_i, Eq. 3: mean of softmax(f(x))[i] over class-i training images
        "n": int,
    }, pk="id")
    db["class_stats"].create_index(["erm_model_id", "label"], unique=True)
    db["selections"].create({
        "id": int,
        "erm_model_id": int,
        "purpose": str,  # source (D_i: lowest loss) / inversion (the textual-inversion set)
        "label": int,
        "sample_id": int,
        "rank": int,  # 0 = first chosen
        "loss": float,
    }, pk="id", foreign_keys=[("sample_id", "samples", "id")])
    db["selections"].create_index(["purpose", "label", "rank"])
    db["tokens"].create({
        "id": int,
        "label": int,
        "token": str,  # the placeholder string, e.g. "<waterbird>"
        "path": str,  # learned_embeds.safetensors, relative to the project
        "sha256": str,
        "model_ref": str,  # the diffusion model it was learned on
        "config": str,  # JSON
        "loss_curve": str,  # JSON list
        "created_at": str,
    }, pk="id")
    db["masks"].create({
        "id": int,
        "sample_id": int,
        "backend": str,
        "params_hash": str,
        "params": str,  # JSON
        "status": str,  # ok / no_detection
        "score": float,  # detection score (langsam), mean saliency (gradcam), 1.0 (provided)
        "area": float,  # share of pixels marked 255
        "path": str,  # PNG, 255 = repaint, relative to the project; NULL when no mask
        "created_at": str,
    }, pk="id", foreign_keys=[("sample_id", "samples", "id")])
    db["masks"].create_index(["sample_id", "backend", "params_hash"], unique=True)
    db["candidates"].create({
        "id": int,
        "key": str,  # unique job key: method/source/direction/variant
        "method": str,  # ddb / scgs
        "source_id": int,
        "source_label": int,  # i
        "target_label": int,  # i'
        "mask_id": int,
        "path": str,  # generated image, relative to the project
        "seed": int,
        "prompt": str,
        "provenance": str,  # JSON: backend, params, token hash, model ids and hashes, timings
        "psi": float,  # softmax(f(x'))[i], compared with Psi_i (Eq. 3)
        "rho": float,  # sum_k M_k IG_k(x'), Eq. 4-5
        "ig_delta": float,  # IG convergence delta
        "ig_path": str,  # per-pixel attribution map (.npy), relative to the project
        "probs_source": str,  # JSON softmax of x
        "probs_generated": str,  # JSON softmax of x'
        "created_at": str,
        "scored_at": str,
    }, pk="id", foreign_keys=[("source_id", "samples", "id"), ("mask_id", "masks", "id")])
    db["candidates"].create_index(["key"], unique=True)
    db["candidates"].create_index(["source_label", "target_label"])
    db["decisions"].create({
        "candidate_id": int,
        "decision": str,  # accept / reject (manual override of the automatic decision)
        "updated_at": str,
    }, pk="candidate_id", foreign_keys=[("candidate_id", "candidates", "id")])
    db["audit"].create({
        "id": int,
        "candidate_id": int,
        "old": str,  # accept / reject / NULL (= automatic)
        "new": str,
        "who": str,
        "at": str,
    }, pk="id")


@migrations()
def m004_reports(db: sqlite_utils.Database) -> None:
    # Version 4: evaluation reports of retraining runs and baselines (JSON + Markdown + plots).
    db["reports"].create({
        "id": int,
        "title": str,
        "kind": str,  # retrain / baseline / table
        "model_ids": str,  # JSON list (one per seed)
        "baseline_model_id": int,  # the "before" model (ERM)
        "summary": str,  # JSON: the whole report
        "markdown": str,
        "dir": str,  # report.json, report.md, groups.png, curves.png; relative to the project
        "created_at": str,
    }, pk="id")


@migrations()
def m005_score_model(db: sqlite_utils.Database) -> None:
    # Version 5: every ψ/ρ records the ERM model that computed it, so scores of another model are
    # found (stale) when the active ERM model changes. Scores stored before this version were
    # computed with the model that was active then, which is the best record there is.
    db["candidates"].add_column("score_model_id", int)
    active = db.execute("select value from meta where key = 'active_erm_model'").fetchone()
    model_id = json.loads(active[0]) if active else None
    if model_id is not None:
        db.execute("update candidates set score_model_id = ? where psi is not null", [model_id])


@migrations()
def m006_actions(db: sqlite_utils.Database) -> None:
    # Version 6: an append-only audit log. Every user action (a decision on one candidate or a batch,
    # an undo, a threshold change) is one ``actions`` row; ``audit`` keeps one row per candidate changed,
    # with the action it belongs to and where it came from (app, cli, api). Undo appends an action
    # that restores the previous state; nothing is deleted. Runs remember the process that runs them,
    # so a run whose process died is found and marked "interrupted".
    db["actions"].create({
        "id": int,
        "kind": str,  # decision / undo / thresholds / thresholds-undo
        "source": str,  # app / cli / api
        "who": str,
        "at": str,
        "undoes": int,  # the action an undo reverts
        "n": int,  # candidates changed
        "detail": str,  # JSON: the decision and the filter of a batch; thresholds before/after
    }, pk="id")
    db["actions"].create_index(["kind", "undoes"])
    db["audit"].add_column("action_id", int)
    db["audit"].add_column("source", str)
    for audit_id, candidate_id, new, who, at in db.execute(
            "select id, candidate_id, new, who, at from audit order by id").fetchall():
        action = db["actions"].insert({"kind": "decision", "source": "app", "who": who, "at": at, "n": 1,
                                       "detail": json.dumps({"decision": new, "candidates": [candidate_id]})}).last_pk
        db.execute("update audit set action_id = ?, source = 'app' where id = ?", [action, audit_id])
    db["runs"].add_column("pid", int)
    db["runs"].add_column("host", str)


@migrations()
def m007_map(db: sqlite_utils.Database) -> None:
    # Version 7: the map of the candidates — each candidate's (and source image's) ERM features
    # projected to two dimensions, per ERM model and projection method.
    db["map_points"].create({
        "kind": str,  # candidate / source
        "item_id": int,  # candidates.id or samples.id
        "erm_model_id": int,
        "method": str,  # pca / umap
        "x": float,
        "y": float,
    }, pk=("kind", "item_id", "erm_model_id", "method"))
    # the review screen asks which methods and directions exist: an index answers without reading every row
    db["candidates"].create_index(["method", "source_label", "target_label"], if_not_exists=True)


@migrations()
def m008_candidate_version(db: sqlite_utils.Database) -> None:
    # Version 8: a counter that every change to ``candidates`` advances (triggers, whoever writes), so
    # that the review model can keep its arrays on disk and know exactly when they are out of date.
    db.execute("create table if not exists candidate_version (v integer not null)")
    db.execute("insert into candidate_version (v) select 0 where not exists (select 1 from candidate_version)")
    for op in ("insert", "update", "delete"):
        db.execute(f"create trigger if not exists candidates_{op}_version after {op} on candidates "
                   f"begin update candidate_version set v = v + 1; end")


@migrations()
def m009_mask_change(db: sqlite_utils.Database) -> None:
    # Version 9: how much each candidate changed inside its mask (mean |x' - x| / 255), computed with its
    # scores; the review queue looks first at generations that repainted (almost) nothing.
    if "mask_change" not in db["candidates"].columns_dict:
        db["candidates"].add_column("mask_change", float)


@migrations()
def m010_refinds(db: sqlite_utils.Database) -> None:
    # Version 10: the object found again in each generated image of a langsam project (GroundingDINO with the
    # class's object word, inside the mask's box): its best box score, 0 when it found none. The review queue
    # looks first at generations in which the detector no longer finds the object.
    if "refinds" not in db.table_names():
        db.execute("create table refinds (candidate_id integer primary key references candidates(id) on delete cascade, "
                   "score real not null, n_boxes integer not null, created_at text)")
