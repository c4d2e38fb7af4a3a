"""Retraining (Eq. 6–8), the baselines and the evaluation report."""


from dataclasses import replace

import numpy as np
import pytest
import torch

from ddb_core import api
from ddb_core.project.errors import ConfigError
from ddb_core.curation.decisions import set_decision, set_thresholds
from ddb_core.method.baselines import JTTConfig
from ddb_core.method.retraining import RetrainConfig, accepted_candidates, generated_plan, small_subset_warnings
from ddb_core.method.objective import balanced_loss
from ddb_core.classifiers.training import MixedBatchSampler, TrainConfig, TrainPlan

TINY_TRAIN = TrainConfig(image_size=32, epochs=1, batch_size=16)


def test_empty_subsets_give_a_finite_loss_equal_to_plain_ce():
    logits = torch.randn(6, 2)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    plain = torch.nn.functional.cross_entropy(logits, y)
    only_real = balanced_loss(logits, y, torch.full((6,), -1), [2.0, 3.0])
    assert torch.isfinite(only_real) and torch.allclose(only_real, plain)
    only_gen = balanced_loss(logits, y, torch.tensor([1, 1, 1, 1, 1, 1]), [2.0, 3.0])  # no real, no class-0 term
    assert torch.isfinite(only_gen) and torch.allclose(only_gen, 3.0 * plain)
    empty = balanced_loss(logits[:0], y[:0], torch.zeros(0, dtype=torch.long), [1.0, 1.0])
    assert float(empty) == 0.0


def test_gamma_scales_the_gradient_of_generated_samples_only():
    y = torch.tensor([0, 1, 1, 0])
    terms = torch.tensor([-1, -1, 1, 0])  # two real, one generated of class 1, one of class 0

    def grads(gammas):
        logits = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        balanced_loss(logits, y, terms, gammas).backward()
        return logits.grad

    g1, g3 = grads([1.0, 1.0]), grads([1.0, 3.0])
    assert torch.allclose(g3[2], 3 * g1[2])  # the class-1 generated sample: three times the weight
    assert torch.allclose(g3[:2], g1[:2]) and torch.allclose(g3[3], g1[3])  # real and class-0 terms unchanged
    assert torch.allclose(grads([0.0, 0.0])[2:], torch.zeros(2, 2))


def test_mixed_batches_hold_the_generated_share():
    s = MixedBatchSampler(n_real=50, n_gen=7, batch_size=10, ratio=0.3, generator=torch.Generator().manual_seed(1))
    batches = list(s)
    assert len(batches) == len(s) == 8  # 50 real / 7 per batch
    assert all(sum(i >= 50 for i in b) == 3 for b in batches)
    assert sorted(i for b in batches for i in b if i < 50) == list(range(50))
    with pytest.raises(ConfigError):
        TrainPlan(gen_ratio=1.0)


def test_manual_overrides_change_the_training_set(candidates_project):
    p = candidates_project
    set_thresholds(p, Psi={0: 0.0, 1: 0.0})  # nothing passes ψ < Ψ
    assert accepted_candidates(p) == []
    cid = p.db.execute("select id from candidates where target_label = 1 order by id limit 1").fetchone()[0]
    set_decision(p, [cid], "accept")
    acc = accepted_candidates(p)
    assert [c["id"] for c in acc] == [cid]
    plan = generated_plan(p, RetrainConfig(train=TINY_TRAIN, gammas=(1.0, 2.5)))
    assert plan.extra_labels == [1] and plan.extra_terms == [1] and plan.gammas == [1.0, 2.5]
    assert plan.init_state is not None and plan.describe["per_direction"] == {"0->1": 1}
    set_thresholds(p, Psi={0: 1.001, 1: 1.001}, P={0: -1e9, 1: -1e9})  # everything passes
    set_decision(p, [cid], "reject")
    assert cid not in {c["id"] for c in accepted_candidates(p)} and len(accepted_candidates(p)) == 7
    with pytest.raises(ConfigError, match="one per class"):
        generated_plan(p, RetrainConfig(train=TINY_TRAIN, gammas=(1.0,)))


def test_retraining_run_stores_models_and_a_report_that_matches_an_independent_computation(candidates_project):
    p = candidates_project
    set_thresholds(p, Psi={0: 1.001, 1: 1.001}, P={0: -1e9, 1: -1e9})
    out = api.retrain(p, RetrainConfig(train=TINY_TRAIN, seeds=(0, 1), gen_ratio=0.25))
    assert len(out["model_ids"]) == 2 and out["n_generated"] == 8 and out["per_direction"] == {"0->1": 4, "1->0": 4}
    rep = out["report"]
    run = p.model(out["model_ids"][0])
    assert run["role"] == "ddb" and run["config"]["plan"]["n_generated"] == 8 and run["metrics"]["history"]
    # Files and the DB row.
    d = p.root / "reports" / str(rep["id"])
    for f in ("report.json", "report.md", "groups.png", "curves.png"):
        assert (d / f).stat().st_size > 0
    assert api.load_report(p, rep["id"])["after"]["worst_group_acc"] == rep["after"]["worst_group_acc"]
    assert [r["id"] for r in api.reports(p)] == [rep["id"]]
    # Independent computation from the stored checkpoints.
    from ddb_core.curation.reporting import test_predictions

    rows = p.samples("test", "label, attr")
    y = np.array([r["label"] for r in rows])
    a = np.array([r["attr"] for r in rows])
    wgas, means = [], []
    for mid in out["model_ids"]:
        pred = test_predictions(p, mid)
        accs = [np.mean(pred[(y == c) & (a == g)] == c) for c in (0, 1) for g in (0, 1) if ((y == c) & (a == g)).any()]
        wgas.append(min(accs))
        means.append(np.mean(pred == y))
    assert rep["after"]["worst_group_acc"] == pytest.approx(np.mean(wgas))
    assert rep["after"]["mean_acc"] == pytest.approx(np.mean(means))
    assert rep["after"]["worst_group_acc_std"] == pytest.approx(np.std(wgas))
    erm_pred = test_predictions(p, p.active_erm_id)
    assert rep["delta"]["mean_acc"]["delta"] == pytest.approx(np.mean(means) - np.mean(erm_pred == y))
    lo, hi = rep["after"]["mean_acc_ci95"]
    assert lo <= rep["after"]["mean_acc"] <= hi
    assert "before" in (d / "report.md").read_text() and "weighted by train group shares" in (d / "report.md").read_text()
    # A class with fewer accepted samples than batches per epoch is flagged, in the result and the report.
    per_epoch = (p.sample_count("train") + 8) / TINY_TRAIN.batch_size
    flagged = [c for c in (0, 1) if 4 < per_epoch]  # 4 accepted samples per target class
    assert len(out["warnings"]) == len(flagged)
    assert (d / "report.md").read_text().count("**warning**") == len(flagged)


def test_few_accepted_samples_of_a_class_are_flagged(candidates_project):
    p = candidates_project
    set_thresholds(p, Psi={0: 1.001, 1: 1.001}, P={0: -1e9, 1: -1e9})  # all 8 kept: 4 per target class
    cands = accepted_candidates(p)
    n_total = p.sample_count("train") + len(cands)
    names = p.class_names
    # One sample per batch of size 1: every class with accepted samples is far below one per batch.
    w = small_subset_warnings(p, cands, batch_size=1)
    assert len(w) == 2 and all(f"target class {n!r}" in x for n, x in zip(names, w)) and "only 4 accepted" in w[0]
    # One batch per epoch: four samples are plenty.
    assert small_subset_warnings(p, cands, batch_size=n_total) == []
    # Rejecting three of one class leaves one sample; only that class is flagged at a batch size that holds 4.
    ones = [c["id"] for c in cands if c["target_label"] == 1][:3]
    set_decision(p, ones, "reject")
    left = accepted_candidates(p)
    w = small_subset_warnings(p, left, batch_size=max(1, n_total // 2))  # two batches per epoch
    assert len(w) == 1 and f"target class {names[1]!r}" in w[0] and "only 1 accepted sample " in w[0]
    assert api.retraining_warnings(p, batch_size=max(1, n_total // 2)) == w


def test_gamma_search_chooses_by_val_wga_and_the_other_seeds_train_with_the_choice(candidates_project):
    p = candidates_project
    set_thresholds(p, Psi={0: 1.001, 1: 1.001}, P={0: -1e9, 1: -1e9})
    n_before = len(p.models())
    out = api.retrain(p, RetrainConfig(train=TINY_TRAIN, seeds=(0, 1), gamma_grid=(1.0, 5.0)), report=False)
    table = out["gamma_search"]
    assert [r["gamma"] for r in table] == [1.0, 5.0] and sum(r["chosen"] for r in table) == 1
    # The choice is the best val WGA (ties: val accuracy, then the first listed), from the stored models.
    vals = [(p.model(r["model_id"])["metrics"]["val"]["worst_group_acc"],
             p.model(r["model_id"])["metrics"]["val"]["mean_acc"]) for r in table]
    best = max(range(2), key=lambda k: vals[k])
    assert table[best]["chosen"] and out["gammas"] == [table[best]["gamma"]] * 2
    # Seed 0 is the chosen search run; seed 1 is new and trained with the chosen γ.
    assert out["model_ids"][0] == table[best]["model_id"]
    seed1 = p.model(out["model_ids"][1])
    assert seed1["config"]["seed"] == 1 and seed1["config"]["plan"]["gammas"] == [table[best]["gamma"]] * 2
    assert len(p.models()) == n_before + 3  # two search runs + one more seed
    with pytest.raises(ConfigError, match="repeated"):
        RetrainConfig(gamma_grid=(1.0, 1.0))
    with pytest.raises(ConfigError, match=">= 0"):
        RetrainConfig(gamma_grid=(1.0, -2.0))


def test_gamma_selection_key_falls_back_to_val_accuracy_without_group_labels():
    from ddb_core.method.retraining import selection_key

    with_groups = {"val": {"worst_group_acc": 0.5, "mean_acc": 0.9}}
    assert selection_key(with_groups, "auto") == (0.5, 0.9)
    assert selection_key(with_groups, "val_acc") == (0.9, 0.5)
    assert selection_key({"val": {"worst_group_acc": None, "mean_acc": 0.7}}, "val_wga") == (0.7, -1.0)


def test_bootstrap_interval_brackets_and_narrows_with_more_samples():
    from ddb_core.curation.reporting import _metrics_resampled

    rng = np.random.default_rng(0)
    out = []
    for n in (100, 2000):
        correct = rng.uniform(size=n) < 0.8
        group = rng.integers(0, 2, n)
        idx = rng.integers(0, n, size=(500, n))
        m = _metrics_resampled(correct, group, 2, np.ones(2), idx)
        lo, hi = np.percentile(m["mean_acc"], [2.5, 97.5])
        assert lo < correct.mean() < hi
        out.append(hi - lo)
    assert out[1] < out[0] / 2


def test_baselines_run_and_state_their_group_labels(scored_project, monkeypatch):
    p = scored_project
    jtt = api.baseline(p, "jtt", jtt=JTTConfig(train=TINY_TRAIN, jtt_epochs=1, lambda_up=5), report=False)
    assert jtt["group_labels"] == "val" and jtt["details"]["error_set"] >= 0
    assert p.model(jtt["model_ids"][0])["config"]["plan"]["weighted"] is True
    dfr = api.baseline(p, "dfr", report=False)
    m = p.model(dfr["model_ids"][0])
    assert dfr["group_labels"] == "val" and m["role"] == "dfr" and m["metrics"]["uses_val_group_labels"]
    oracle = api.baseline(p, "oracle", train=TINY_TRAIN, report=False)
    assert oracle["group_labels"] == "train+val" and p.model(oracle["model_ids"][0])["config"]["sampler"] == "group_balanced"
    # An empty error set is reported, not a crash.
    import ddb_core.method.baselines as R

    monkeypatch.setattr(R, "jtt_error_set", lambda *a, **k: ([], 0))
    empty = api.baseline(p, "jtt", jtt=JTTConfig(train=TINY_TRAIN), report=False)
    assert empty["details"]["error_set"] == 0 and "empty" in empty["details"]["note"]
    with pytest.raises(ConfigError):
        api.baseline(p, "lff")


def test_a_per_class_gamma_grid_tries_every_combination_and_retraining_starts_from_the_given_erm(candidates_project):
    from ddb_core.method.retraining import gamma_label, gamma_search
    from ddb_core.classifiers.training import train_classifier

    p = candidates_project
    set_thresholds(p, Psi={0: 1.001, 1: 1.001}, P={0: -1e9, 1: -1e9})
    cfg = RetrainConfig(train=TINY_TRAIN, gamma_grid=(1.0, 4.0), per_class=True)
    assert cfg.grid(2) == [(1.0, 1.0), (1.0, 4.0), (4.0, 1.0), (4.0, 4.0)]
    assert RetrainConfig(gamma_grid=(1.0, 4.0)).grid(2) == [(1.0, 1.0), (4.0, 4.0)]
    with pytest.raises(ConfigError, match="runs"):
        RetrainConfig(gamma_grid=tuple(float(g) for g in range(1, 9)), per_class=True).grid(3)
    # Another ERM model (seed 1) is the start of this retraining, not the active one.
    other = train_classifier(p, TrainConfig(image_size=32, epochs=1, batch_size=16, seed=1), role="erm",
                             make_active=False).model_id
    assert other != p.active_erm_id
    seen = []
    gammas, table = gamma_search(p, RetrainConfig(train=TINY_TRAIN, gamma_grid=(1.0, 4.0), per_class=True,
                                                  init_model_id=other), on_done=lambda k, m: seen.append(k))
    assert [t["gammas"] for t in table] == [[1.0, 1.0], [1.0, 4.0], [4.0, 1.0], [4.0, 4.0]]
    assert seen == ["1", "1,4", "4,1", "4"] and sum(t["chosen"] for t in table) == 1
    assert list(gammas) == next(t["gammas"] for t in table if t["chosen"])
    assert gamma_label(table[1]) == "γ = (1, 4)" and gamma_label(table[0]) == "γ = 1"
    for t in table:
        plan = p.model(t["model_id"])["config"]["plan"]
        assert plan["init_model_id"] == other and plan["gammas"] == t["gammas"] and plan["objective"] == "Eq. 6-8"
    # Resumed with everything done: no new model.
    n = len(p.models())
    gamma_search(p, RetrainConfig(train=TINY_TRAIN, gamma_grid=(1.0, 4.0), per_class=True, init_model_id=other),
                 done={k: t["model_id"] for k, t in zip(seen, table)})
    assert len(p.models()) == n


def test_scgs_images_are_ordinary_samples_and_gamma_does_not_apply(candidates_project):
    p = candidates_project
    cands = [dict(r) for r in p.db.query("select id, source_id, source_label, target_label, path from candidates")]
    plan = generated_plan(p, RetrainConfig(method="scgs", init="scratch"), cands)
    assert plan.extra_terms == [-1] * len(cands) and plan.describe["objective"] == "ordinary samples"
    ddb = generated_plan(p, RetrainConfig(init="scratch"), cands)
    assert ddb.extra_terms == [int(c["target_label"]) for c in cands]
    with pytest.raises(ConfigError, match="ordinary"):
        RetrainConfig(method="scgs", gamma_grid=(1.0, 3.0))
    # An ordinary sample adds to the batch's one mean, whatever γ says.
    logits, labels = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    ordinary = balanced_loss(logits, labels, torch.tensor([-1] * 6), [10.0, 10.0])
    assert torch.allclose(ordinary, torch.nn.functional.cross_entropy(logits, labels))


def test_jtt_finds_each_seeds_error_set_and_chooses_t_and_lambda_on_val(scored_project):
    from ddb_core.method.baselines import jtt_search, run_jtt_tuned

    p = scored_project
    cfg = JTTConfig(train=TINY_TRAIN, seeds=(0, 1))
    (T, lam), table = jtt_search(p, cfg, (1, 2), (3.0, 9.0))
    assert [(r["T"], r["lambda_up"]) for r in table] == [(1, 3.0), (1, 9.0), (2, 3.0), (2, 9.0)]
    assert sum(r["chosen"] for r in table) == 1 and all(r["error_set"] is not None for r in table)
    best = max(table, key=lambda r: (r["val_wga"], r["val_acc"]))
    assert (T, lam) == (best["T"], best["lambda_up"])
    # The identification models: one per (T, seed), reused across λ.
    ids = {r["model_id"]: p.model(r["model_id"])["config"]["plan"]["jtt"]["identification_model"] for r in table}
    idents = [p.model(i) for i in set(ids.values())]
    assert sorted(m["config"]["epochs"] for m in idents) == [1, 2] and {m["config"]["seed"] for m in idents} == {0}
    n = len(p.models())
    res = run_jtt_tuned(p, cfg, (1, 2), (3.0, 9.0))
    assert res.model_ids[0] == next(r["model_id"] for r in table if r["chosen"])  # the search's run, reused
    seed1 = p.model(res.model_ids[1])
    ident1 = p.model(seed1["config"]["plan"]["jtt"]["identification_model"])
    assert seed1["config"]["seed"] == 1 and ident1["config"]["seed"] == 1 and ident1["config"]["epochs"] == T
    assert len(p.models()) == n + 2  # seed 1's identification model and its JTT model


def test_dfr_follows_its_paper_on_each_seeds_erm(scored_project):
    from ddb_core.method.baselines import DFR_CS, _balanced, run_dfr
    from ddb_core.classifiers.training import train_classifier

    p = scored_project
    g = np.array([0] * 10 + [1] * 3 + [2] * 7)
    idx = _balanced(g, np.random.default_rng(0))
    assert np.bincount(g[idx]).tolist() == [3, 3, 3] and len(set(idx.tolist())) == 9
    other = train_classifier(p, TrainConfig(image_size=32, epochs=1, batch_size=16, seed=1), role="erm",
                             make_active=False).model_id
    res = run_dfr(p, (0, 1), n_fits=4, erm_ids={1: other})
    m0, m1 = (p.model(i) for i in res.model_ids)
    assert m0["config"]["erm_model_id"] == p.active_erm_id and m1["config"]["erm_model_id"] == other
    for m in (m0, m1):
        assert m["config"]["penalty"] == "l1" and m["config"]["C"] in DFR_CS and m["config"]["n_fits"] == 4
        assert [t["C"] for t in m["metrics"]["tuning"]] == list(DFR_CS)
        best = max(m["metrics"]["tuning"], key=lambda t: t["half_val_wga"])
        assert m["config"]["C"] == best["C"] and m["metrics"]["test"]["worst_group_acc"] is not None


def test_jtt_upsamples_its_error_set_and_identifies_with_erm_stopped_at_t(scored_project, monkeypatch):
    """JTT as its paper does it: an epoch holds n + (λ_up − 1)·|E| samples (each error-set sample λ_up times),
    and the identification model is ERM's recipe stopped at epoch T (its learning rate not yet annealed)."""
    import ddb_core.method.baselines as R

    p = scored_project
    n = p.sample_count("train")
    errors = [0, 3, 5]
    seen = {}
    import torch.utils.data as tud

    real_loader = tud.DataLoader

    def counting_loader(ds, *a, **k):
        loader = real_loader(ds, *a, **k)
        if isinstance(k.get("sampler"), list):
            seen.setdefault("orders", []).append(list(k["sampler"]))
        return loader

    monkeypatch.setattr(R, "jtt_error_set", lambda *a, **k: (errors, 0))
    monkeypatch.setattr(tud, "DataLoader", counting_loader)
    res = api.baseline(p, "jtt", jtt=JTTConfig(train=replace(TINY_TRAIN, epochs=1), lambda_up=4), report=False)
    order = seen["orders"][-1]
    assert len(order) == n + (4 - 1) * len(errors)
    assert [order.count(k) for k in errors] == [4, 4, 4] and order.count(1) == 1
    assert p.model(res["model_ids"][0])["config"]["plan"]["upsampled"] is True
    with pytest.raises(ConfigError, match="whole number"):
        JTTConfig(lambda_up=2.5)
    monkeypatch.undo()
    # the identification model: ERM's schedule (epochs) stopped after T epochs
    from ddb_core.method.baselines import jtt_error_set

    cfg = JTTConfig(train=replace(TINY_TRAIN, epochs=3), jtt_epochs=1)
    _errors, ident = jtt_error_set(p, cfg)
    conf = p.model(ident)["config"]
    assert conf["epochs"] == 1 and conf["schedule_epochs"] == 3
