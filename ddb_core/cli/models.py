"""The classifiers: ``ddb erm train|load|eval``, ``ddb retrain``, ``ddb evaluate``, ``ddb baseline jtt|dfr|oracle``,
``ddb report``.
"""

from __future__ import annotations

import json

from .common import command, _add_project, _add_train_args, _add_device_args, _device, _warn_stale, _train_config, _open


def _erm_train_args(p):
    _add_project(p)
    _add_train_args(p)
    p.add_argument("--oracle", action="store_true",
                   help="upsample minority groups with the TRAIN group labels (a reference, not a method)")


@command("erm train", "train the ERM classifier (or, with --oracle, the group-balanced oracle)", _erm_train_args)
def _erm_train(a, progress):
    from .. import api
    from ..classifiers.evaluation import report_markdown

    project = _open(a)
    res = api.train_erm(project, _train_config(a), oracle=a.oracle, on_progress=progress)
    progress.close()
    if res.resumed_from_epoch:
        print(f"resumed run {res.run_id} from epoch {res.resumed_from_epoch}")
    print(f"model {res.model_id} (best epoch {res.best_epoch}, {res.seconds:.0f}s)")
    for split, rep in res.reports.items():
        print(report_markdown(rep, f"{split} ({'oracle' if a.oracle else 'ERM'})"))
    _warn_stale(project)
    return 0


def _erm_load_args(p):
    _add_project(p)
    p.add_argument("--checkpoint", required=True, help="state_dict file (loaded with weights_only=True)")
    p.add_argument("--arch", help="architecture of a bare state_dict (resnet18 | resnet34 | resnet50 | resnet18_w32)")
    p.add_argument("--image-size", type=int, default=64, help="input side the model expects (default: %(default)s)")
    _add_device_args(p)


@command("erm load", "use a checkpoint you trained elsewhere as the ERM model", _erm_load_args)
def _erm_load(a, progress):
    from .. import api
    from ..classifiers.evaluation import report_markdown

    project = _open(a)
    mid = api.load_erm(project, a.checkpoint, a.arch, a.image_size, on_progress=progress, device=_device(a, project))
    progress.close()
    print(f"model {mid} is the project's ERM model")
    for split, rep in api.evaluate(project, mid).items():
        print(report_markdown(rep, split))
    _warn_stale(project)
    return 0


def _erm_eval_args(p):
    _add_project(p)
    p.add_argument("--model", type=int, help="model id (default: the active ERM model)")
    p.add_argument("--recompute", action="store_true", help="re-run the model instead of reading stored metrics")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


@command("erm eval", "per-group evaluation report of the ERM model (or --model ID) on val and test", _erm_eval_args)
def _erm_eval(a, progress):
    from .. import api
    from ..classifiers.evaluation import report_markdown

    reports = api.evaluate(_open(a), a.model, a.recompute)
    if a.json:
        print(json.dumps({s: r.to_dict() for s, r in reports.items()}, indent=2))
    else:
        for split, rep in reports.items():
            print(report_markdown(rep, split))
    return 0




# Retraining, baselines and reports.


def _retrain_args(p):
    from ..method.retraining import RetrainConfig

    r = RetrainConfig()
    _add_project(p)
    _add_train_args(p, r.train)
    p.add_argument("--gamma", type=float, nargs="+", default=None,
                   help="weight of the generated samples: one value, or one per class (default: 1 each)")
    p.add_argument("--gamma-grid", type=float, nargs="+", default=[], metavar="GAMMA",
                   help="choose γ (the same for every class) among these by val WGA, as the paper tunes it: one run per "
                        "value with the first seed, then the other seeds with the best; overrides --gamma")
    p.add_argument("--per-class-gamma", action="store_true",
                   help="with --gamma-grid: one γ per class, every combination of the grid's values a run (the "
                        "paper's Table 10 tunes γ_1 and γ_2 apart)")
    p.add_argument("--gen-ratio", type=float, default=r.gen_ratio,
                   help="share of every batch that is generated samples; 0 = natural sampling (default: %(default)s)")
    p.add_argument("--init", choices=["erm", "scratch"], default=r.init,
                   help="start from the ERM model or from scratch (default: %(default)s)")
    p.add_argument("--init-model", type=int, metavar="ID",
                   help="with --init erm: the ERM model to start from (see `ddb status`; default: the active one)")
    p.add_argument("--reinit-head", action="store_true", help="re-initialise the last layer first")
    p.add_argument("--method", choices=["ddb", "scgs", "all"], default=r.method, help="whose candidates (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(r.seeds), help="one model per seed; mean ± std (default: 0)")


@command("retrain", "retrain on the train split + accepted candidates (Eq. 6-8); report against ERM", _retrain_args)
def _retrain(a, progress):
    from .. import api
    from ..method.retraining import RetrainConfig, gamma_label
    from ..curation.reporting import _pct, report_markdown

    project = _open(a)
    n = len(project.class_names)
    gammas = None if a.gamma is None else tuple(a.gamma * n if len(a.gamma) == 1 else a.gamma)
    cfg = RetrainConfig(train=_train_config(a), gammas=gammas, gamma_grid=tuple(a.gamma_grid), per_class=a.per_class_gamma,
                        gen_ratio=a.gen_ratio,
                        init=a.init, init_model_id=a.init_model, reinit_head=a.reinit_head, method=a.method,
                        seeds=tuple(a.seeds))
    inputs = api.retraining_inputs(project, a.method)
    print("accepted samples per direction: " + (", ".join(f"{k}: {v}" for k, v in inputs.items()) or "none"))
    for w in api.retraining_warnings(project, a.method, cfg.train.batch_size):
        print(f"warning: {w}")
    out = api.retrain(project, cfg, on_progress=progress)
    progress.close()
    for row in out.get("gamma_search") or []:
        print(f"{gamma_label(row)}: val WGA {_pct(row['val_wga'])}%, val accuracy {_pct(row['val_acc'])}%"
              f" (model {row['model_id']}){'  ← chosen' if row['chosen'] else ''}")
    print(f"models {', '.join(map(str, out['model_ids']))}; report {out['report']['id']} in "
          f"{project.root / 'reports' / str(out['report']['id'])}")
    print(report_markdown(out["report"]))
    return 0


def _evaluate_args(p):
    _add_project(p)
    p.add_argument("--models", type=int, nargs="+", required=True, help="model ids (see `ddb status`)")
    p.add_argument("--baseline", type=int, help="the 'before' model id (default: the active ERM model)")
    p.add_argument("--title", default="evaluation", help="report title (default: %(default)s)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")


@command("evaluate", "report of stored models (seeds of one run) against the ERM model, with bootstrap intervals",
         _evaluate_args)
def _evaluate(a, progress):
    from .. import api
    from ..curation.reporting import report_markdown

    project = _open(a)
    rep = api.make_report(project, a.models, baseline_id=a.baseline, title=a.title, kind="evaluation", n_boot=a.n_boot)
    print(report_markdown(rep))
    print(f"saved as report {rep['id']} in {project.root / 'reports' / str(rep['id'])}")
    return 0


def _jtt_args(p):
    from ..method.baselines import JTTConfig

    j = JTTConfig()
    _add_project(p)
    _add_train_args(p)
    p.add_argument("--jtt-epochs", type=int, nargs="+", default=[j.jtt_epochs], metavar="T",
                   help="epochs T of the identification model; several values: chosen on val with --lambda-up's "
                        "(default: %(default)s)")
    p.add_argument("--lambda-up", type=float, nargs="+", default=[j.lambda_up], metavar="LAMBDA",
                   help="upweight of the error set; several values: chosen on val, one run per (T, λ) with the first "
                        "seed, as the JTT paper tunes them (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="default: 0")
    p.add_argument("--with-scgs", action="store_true", help="JTT+SCGS: add the accepted SCGS images to JTT's training set")


def _dfr_args(p):
    _add_project(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="default: 0")
    p.add_argument("--fits", type=int, default=20,
                   help="group-balanced subsets of val whose fits are averaged (and per C when tuning; default: %(default)s)")


def _oracle_args(p):
    _add_project(p)
    _add_train_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="default: 0")


def _baseline(name: str):
    def run(a, progress):
        from .. import api
        from ..method.baselines import JTTConfig
        from ..curation.reporting import report_markdown

        project = _open(a)
        train = _train_config(a) if name in ("jtt", "oracle") else None
        jtt = None
        if name == "jtt":
            jtt = JTTConfig(train=train, jtt_epochs=a.jtt_epochs[0], lambda_up=a.lambda_up[0], seeds=tuple(a.seeds))
            if a.with_scgs:
                out = api.jtt_with_scgs(project, jtt, on_progress=progress)
                progress.close()
                print(report_markdown(out["report"]))
                return 0
        out = api.baseline(project, name, seeds=a.seeds, train=train, jtt=jtt, on_progress=progress,
                           jtt_grid=(tuple(a.jtt_epochs), tuple(a.lambda_up)) if name == "jtt" else None,
                           dfr_fits=getattr(a, "fits", 20))
        progress.close()
        for row in out["details"].get("search") or []:
            print(f"T = {row['T']}, λ_up = {row['lambda_up']:g}: error set {row['error_set']}, val WGA "
                  f"{100 * (row['val_wga'] or 0):.1f}%, val accuracy {100 * (row['val_acc'] or 0):.1f}%"
                  f"{'  ← chosen' if row['chosen'] else ''}")
        if out["details"].get("note"):
            print(f"note: {out['details']['note']}")
        print(report_markdown(out["report"]))
        return 0
    return run


command("baseline jtt", "JTT: upweight the error set of an early-stopped ERM (no group labels; val groups for selection)",
        _jtt_args)(_baseline("jtt"))
command("baseline dfr", "DFR: refit the ERM's last layer on group-balanced val features (val group labels)",
        _dfr_args)(_baseline("dfr"))
command("baseline oracle", "group-balanced sampling with train group labels (a reference, not a method)",
        _oracle_args)(_baseline("oracle"))


def _report_args(p):
    _add_project(p)
    p.add_argument("--id", type=int, help="report id")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


@command("report", "list the stored reports, or print one (--id) as Markdown", _report_args)
def _report(a, progress):
    from .. import api
    from ..curation.reporting import report_markdown

    project = _open(a)
    if a.id is None:
        rows = api.reports(project)
        if not rows:
            print("no reports yet: `ddb retrain`, `ddb baseline ...` or `ddb evaluate` make them")
        for r in rows:
            print(f"report {r['id']} [{r['kind']}] {r['title']}: models {r['model_ids']} ({r['dir']}, {r['created_at']})")
        return 0
    rep = api.load_report(project, a.id)
    print(json.dumps(rep, indent=2) if a.json else report_markdown(rep))
    return 0
