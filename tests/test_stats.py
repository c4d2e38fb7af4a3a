"""Intervals over data seeds × training seeds, and how the docs state a difference."""

import math

import pytest

from ddb_core.bench.stats import interval, paired, t975, verdict


def test_t_quantiles_match_the_table():
    assert t975(1) == pytest.approx(12.706, abs=1e-3)
    assert t975(2) == pytest.approx(4.303, abs=1e-3)
    assert t975(8) == pytest.approx(2.306, abs=1e-3)
    with pytest.raises(ValueError):
        t975(0)


def test_several_data_seeds_give_the_t_interval_of_the_per_data_seed_means():
    values = {0: [0.70, 0.74, 0.72], 1: [0.60, 0.64, 0.62], 2: [0.80, 0.78, 0.82]}
    iv = interval(values)
    means = [0.72, 0.62, 0.80]
    m = sum(means) / 3
    sd = math.sqrt(sum((x - m) ** 2 for x in means) / 2)
    assert iv.scope == "data seeds" and iv.n_data == 3 and iv.n_values == 9
    assert iv.mean == pytest.approx(m)
    assert iv.hi - iv.mean == pytest.approx(4.303 * sd / math.sqrt(3), rel=1e-3)
    # The spread between data seeds, not the tight training seeds, sets the width.
    tight = interval({0: [0.72] * 3, 1: [0.62] * 3, 2: [0.80] * 3})
    assert tight.hi - tight.lo == pytest.approx(iv.hi - iv.lo, rel=1e-9)


def test_one_data_seed_falls_back_to_training_seeds_and_one_value_has_no_interval():
    iv = interval({0: [0.5, 0.6, 0.7]})
    assert iv.scope == "training seeds" and iv.mean == pytest.approx(0.6)
    assert iv.hi - iv.mean == pytest.approx(4.303 * 0.1 / math.sqrt(3), rel=1e-3)
    one = interval({0: [0.5]})
    assert one.scope == "one value" and one.lo is None and one.shown is None
    assert "no difference shown" in verdict(one)
    with pytest.raises(ValueError):
        interval({0: [], 1: [float("nan")]})


def test_paired_differences_are_taken_within_each_data_seed_and_training_seed():
    a = {0: {0: 0.80, 1: 0.82}, 1: {0: 0.70, 1: 0.74}, 2: {0: 0.90, 1: 0.88}}
    # b moves with a across data seeds: the paired difference is steady though the levels are not
    b = {0: {0: 0.70, 1: 0.71}, 1: {0: 0.61, 1: 0.63}, 2: {0: 0.80, 1: 0.79}}
    iv = paired(a, b)
    assert iv.mean == pytest.approx(0.10, abs=0.01) and iv.shown and iv.lo > 0
    assert "**higher**" in verdict(iv)
    # Unpaired, the same numbers overlap: the levels vary more between data seeds than the gap.
    ia, ib = interval({d: list(v.values()) for d, v in a.items()}), interval({d: list(v.values()) for d, v in b.items()})
    assert ia.lo < ib.hi
    # A difference whose interval straddles zero is not stated as a result.
    c = {0: {0: 0.85, 1: 0.83}, 1: {0: 0.66, 1: 0.70}, 2: {0: 0.92, 1: 0.90}}
    mixed = paired(a, c)
    assert not mixed.shown and "no difference shown" in verdict(mixed)
    # Only pairs present in both count.
    assert paired({0: {0: 0.5, 1: 0.6}}, {0: {1: 0.4}}).n_values == 1
    with pytest.raises(ValueError):
        paired({0: {0: 0.5}}, {1: {0: 0.5}})


def _row(method, wga, acc):
    import statistics

    return {"method": method, "seeds": [0, 1, 2], "gamma_search": [],
            **{k: {"mean": statistics.mean(v), "std": statistics.stdev(v), "values": v}
               for k, v in (("wga", wga), ("mean_acc", acc))}}


def test_the_pruning_ablation_states_its_difference_only_where_the_interval_excludes_zero():
    from ddb_core.bench.ablations import pruning_markdown
    from ddb_core.bench.stats import paired

    def res(a, b):
        rows = [_row("DDB with pruning", a, [0.9] * 3), _row("DDB without pruning", b, [0.9] * 3)]
        diff = {k: paired({0: dict(enumerate(rows[0][k]["values"]))}, {0: dict(enumerate(rows[1][k]["values"]))}).to_dict()
                for k in ("wga", "mean_acc")}
        return {"command": "python -m ddb_core bench pruning", "per_direction": {}, "rows": rows, "difference": diff,
                "seconds": 60.0, "config": {"model": "data/models/micro-sd-inpainting"}}

    noisy = pruning_markdown(res([0.7, 0.5, 0.9], [0.6, 0.7, 0.6]))
    assert "WGA +6.7 points [" in noisy and "no difference shown" in noisy and "**higher**" not in noisy
    clear = pruning_markdown(res([0.80, 0.82, 0.81], [0.60, 0.61, 0.62]))
    assert "WGA +20.0 points [" in clear and "**higher**" in clear
    assert "met" not in clear  # no verdict from the means alone


def test_the_average_study_pairs_each_run_with_its_erm_and_reads_its_goal_on_the_whole_interval():
    from ddb_core.bench.average import _figures, _pick_intervals

    def values(wga, avg):  # {split: {field: {training seed: value}}}, the same on val and test
        m = {"worst_group_acc": dict(enumerate(wga)), "train_weighted_acc": dict(enumerate(avg))}
        return {"val": m, "test": m}

    erm = values([0.0, 0.1, 0.0], [0.98, 0.98, 0.99])
    one = _figures([(0, values([0.55, 0.50, 0.60], [0.96, 0.95, 0.96]), erm)])["test"]
    assert math.isclose(one["wga_gain"], (0.55 + 0.40 + 0.60) / 3)
    assert one["wga_gain_interval"]["scope"] == "training seeds" and one["wga_gain_interval"]["lo"] < one["wga_gain"]
    line = _pick_intervals(one)[0]
    assert "3 training seeds of this one data seed" in line
    assert "WGA gain +51.7 [" in line and "average change -2.7 [" in line
    assert ("+25: yes" in line) == (one["wga_gain_interval"]["lo"] >= 0.25)
    assert "above -5: yes" in line
    # a second data seed where the gain is small: the interval is then over the two data seeds' means
    two = _figures([(0, values([0.55, 0.50, 0.60], [0.96, 0.95, 0.96]), erm),
                    (1, values([0.10, 0.15, 0.05], [0.97, 0.97, 0.97]), erm)])["test"]
    iv = two["wga_gain_interval"]
    assert iv["scope"] == "data seeds" and iv["n_data"] == 2 and iv["n_values"] == 6
    assert math.isclose(two["wga_gain"], (0.55 + 0.40 + 0.60 + 0.10 + 0.05 + 0.05) / 6)
    assert iv["lo"] < 0.25 and "+25: no" in _pick_intervals(two)[0]


def test_a_data_seeds_wall_time_without_the_ablations_leaves_out_only_their_stages():
    from ddb_core.bench.seeds import ablation_seconds

    pd = {"stage_seconds": {"data": 10.0, "jtt": 500.0, "retrain ddb": 200.0, "retrain ddb-no-pruning": 230.0,
                            "plain prompt: generation": 260.0, "plain prompt: retrain ddb": 190.0}, "resumed": False}
    assert ablation_seconds(pd) == 680.0
    assert ablation_seconds({"stage_seconds": {"data": 10.0, "retrain ddb": 200.0}}) == 0.0


def test_the_plans_hours_against_hand_computed_cases():
    """The plan's arithmetic: stages one after another over every candidate, each spread over the GPUs on Ray."""
    from ddb_core.bench.plan import plan_hours

    sec = {"masking": 0.09, "generation": 0.54, "scoring": 0.018}  # one GPU's seconds per candidate
    one = plan_hours(sec, 120_000, 1)
    assert one["by_stage"] == pytest.approx({"masking": 3.0, "generation": 18.0, "scoring": 0.6})
    assert one["total"] == pytest.approx(21.6)
    assert plan_hours(sec, 120_000, 4)["total"] == pytest.approx(21.6 / 4)
    # masking left on one GPU: 3 h whatever the number of GPUs
    assert plan_hours(sec, 120_000, 16, ("generation", "scoring"))["total"] == pytest.approx(3.0 + 18.6 / 16)
    assert plan_hours(sec, 0, 4)["total"] == 0
    with pytest.raises(ValueError):
        plan_hours(sec, 10, 0)


def test_the_plan_counts_flops_as_the_pipeline_runs():
    """One VAE encode (the masked image) per candidate, 50 guided UNet steps, one decode; masking is GroundingDINO
    and SAM's encoder; scoring two forwards and 50 forward+backward passes."""
    from ddb_core.bench.plan import per_candidate_flops

    fl = {"text_encoder": 1, "vae_encode": 10, "unet_step_cfg": 100, "vae_decode": 1000, "grounding_dino": 7,
          "sam_image_encoder": 3, "resnet50_forward": 2, "resnet50_forward_backward": 5}
    f = per_candidate_flops(fl)
    assert f == {"generation": 1 + 10 + 50 * 100 + 1000, "masking": 10, "scoring": 2 * 2 + 50 * 5}
    from ddb_core.method.inpainting import ModelCanvas

    assert ModelCanvas.fit((218, 178), 512).canvas_hw == (512, 424)  # a CelebA image's canvas: 424×512, not 512²
