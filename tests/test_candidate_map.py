"""The map of the candidates: computed, resumed after a cancel, drawn, and a cluster of failed
generations selected with one lasso and rejected in one batch."""

import json

import numpy as np
import pytest
from PIL import Image

from ddb_core.curation.candidate_map import MapConfig, compute_map, load_map
from ddb_core.curation.decisions import set_decision, undo
from ddb_core.project.errors import Cancelled, ConfigError
from ddb_core.project.progress import CancelToken
from ddb_core.curation.review import ReviewIndex


def _add_failed_generations(project, n=6) -> list[int]:
    """``n`` candidates whose inpainting failed the same way (a flat grey result), of mixed sizes."""
    base = dict(zip([d[0] for d in project.db.execute("select * from candidates limit 1").description],
                    project.db.execute("select * from candidates order by id limit 1").fetchone()))
    ids = []
    for k in range(n):
        rel = f"candidates/failed-{k}.png"
        Image.new("RGB", (40 + 6 * k, 56 - 2 * k), (128, 128, 128)).save(project.project_path(rel))
        row = {**base, "key": f"failed/{k}", "path": rel, "seed": 1000 + k}
        row.pop("id")
        with project.write():
            cur = project.db.conn.execute(f"insert into candidates ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                                          list(row.values()))
        ids.append(int(cur.lastrowid))
    return ids


def test_the_map_resumes_after_a_cancel_and_a_lasso_rejects_a_cluster_of_failed_generations(candidates_project):
    from ui import plots
    from ui.review_plots import map_frame

    p = candidates_project
    failed = _add_failed_generations(p)
    n_cand = p.db.execute("select count(*) from candidates").fetchone()[0]
    n_src = p.db.execute("select count(distinct source_id) from candidates").fetchone()[0]

    with pytest.raises(ConfigError, match="map method"):
        MapConfig(method="tsne")
    # A cancel after the first batch keeps that batch; the resumed job computes only the rest.
    token = CancelToken()
    with pytest.raises(Cancelled):
        compute_map(p, MapConfig(batch_size=5), on_progress=lambda pr: pr.done and token.cancel(), cancel=token)
    kept = p.db.execute("select count(*) from map_points").fetchone()[0]
    assert kept == 5
    out = compute_map(p, MapConfig(batch_size=5))
    assert out == {"points": n_cand + n_src, "computed": n_cand + n_src - 5}
    assert compute_map(p, MapConfig(batch_size=5))["computed"] == 0  # nothing left to do
    assert [r["status"] for r in p.runs("map")] == ["cancelled", "done", "done"]  # each a run of the project
    data = load_map(p)
    assert data["method"] == "pca" and len(data["candidate_ids"]) == n_cand and len(data["sx"]) == n_src
    assert np.isfinite(data["cx"]).all() and np.isfinite(data["sy"]).all()

    # The failed generations are one tight cluster, apart from every other candidate.
    index = ReviewIndex(p)
    pos, x, y, frame = map_frame(index, data)
    px, py = frame.pixels(x, y)
    is_failed = np.isin(index.ids[pos], failed)
    fx, fy = float(np.mean(px[is_failed])) + frame.left, float(np.mean(py[is_failed])) + frame.top
    spread = np.hypot(px[is_failed] + frame.left - fx, py[is_failed] + frame.top - fy).max()
    gap = np.hypot(px[~is_failed] + frame.left - fx, py[~is_failed] + frame.top - fy).min()
    assert spread < 3 and gap > 12, (spread, gap)

    # One lasso (a rough circle drawn around the cluster) selects exactly them.
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    lasso = list(zip(fx + 8 * np.cos(t), fy + 8 * np.sin(t)))
    chosen = [int(i) for i in index.ids[pos[plots.selected_in(frame, x, y, lasso)]]]
    assert sorted(chosen) == sorted(failed)

    # One batch rejects them, audited; one undo restores them.
    assert set_decision(p, chosen, "reject", detail={"filter": {"selection": len(chosen)}}) == len(failed)
    stored = dict(p.db.execute("select candidate_id, decision from decisions").fetchall())
    assert {i: stored.get(i) for i in failed} == {i: "reject" for i in failed}
    assert sum(v == "reject" for v in stored.values()) == len(failed)
    last = p.db.execute("select kind, n, detail from actions order by id desc limit 1").fetchone()
    assert last[0] == "decision" and last[1] == len(failed) and json.loads(last[2])["filter"] == {"selection": len(failed)}
    undo(p)
    assert not any(v == "reject" for _i, v in p.db.execute("select candidate_id, decision from decisions"))
