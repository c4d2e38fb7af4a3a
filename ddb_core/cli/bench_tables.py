"""The benchmarks that run the whole method: ``ddb bench fullscale`` and the demo's tables (``bench demo``,
``pruning``, ``ti``, ``ti-source``, ``recipe``, ``average``, ``review``, ``scgs``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..project.errors import ConfigError
from .common import command, _no_docs


def _fullscale_args(p):
    p.add_argument("--workdir", default="projects/bench/fullscale",
                   help="where the models (built once, about 5 GB) and the project go (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="keep the stages a killed run finished and run the rest")
    p.add_argument("--replan", action="store_true",
                   help="run nothing: the 120,000-candidate plan again from the stored run (docs/bench/fullscale.json), "
                        "its FLOPs counted at CelebA's size, into that file and the README")
    p.add_argument("--no-docs", action="store_true", help="print the result only; do not touch docs/ and README.md")


@command("bench fullscale", "the full-size path end to end (SD2-inpainting at 512, ResNet-50 at 224, GroundingDINO base + "
         "SAM ViT-H, random weights of the real sizes): seconds, memory and bytes per candidate", _fullscale_args)
def _bench_fullscale(a, progress):
    from ..bench.docs import DOC
    from ..bench.fullscale import bench_fullscale, fullscale_markdown, replan
    from ..bench.plan import plan_markdown

    if a.replan:
        res = replan(workdir=a.workdir, write=not a.no_docs)
        print(plan_markdown(res))
        return 0
    res = bench_fullscale(a.workdir, doc=None if a.no_docs else DOC,
                          json_path=None if a.no_docs else Path("docs/bench/fullscale.json"), resume=a.resume)
    print(fullscale_markdown(res))
    return 0


def _demo_bench_args(p):
    p.add_argument("--quick", action="store_true", help="the smoke preset: one seed, few candidates, short training")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: 0 1 2; --quick: 0)")
    p.add_argument("--data-seeds", type=int, nargs="+", default=None, metavar="D",
                   help="demo data seeds, each its own project (bench demo, average and review: intervals over data seeds "
                        "× training seeds when several; the other benchmarks use the first; default: 0, for bench review "
                        "0 1 2)")
    p.add_argument("--ablations", action="store_true",
                   help="bench demo: also DDB without pruning and with the plain prompt, as paired differences")
    p.add_argument("--oracle", action="store_true",
                   help="bench demo: also the group-balanced oracle (train group labels) as a reference row")
    p.add_argument("--model", help="inpainting model (default: data/models/micro-sd-inpainting)")
    p.add_argument("--workdir", default="projects/bench", help="where the bench projects go (default: %(default)s)")
    p.add_argument("--gamma-grid", type=float, nargs="*", metavar="GAMMA",
                   help="γ values searched by val WGA for the retrainings (default: 1 3 10; --quick: 1 10; "
                        "give the option alone for no search, γ = 1)")
    _no_docs(p)


def _demo_bench(kind: str, fn_name: str, markdown_name: str):
    def run(a, progress):
        from ..bench import ablations
        from ..bench import demo as B
        from ..bench.docs import DOC

        cfg = B.DemoBenchConfig.quick() if a.quick else B.DemoBenchConfig()
        if a.seeds:
            cfg = replace(cfg, seeds=tuple(a.seeds))
        elif kind in ("ti", "ti-source") and not a.quick:  # 4-5 textual-inversion sets: one seed keeps it within 30 min
            cfg = replace(cfg, seeds=(0,))
        if a.model:
            cfg = replace(cfg, model=a.model)
        if a.gamma_grid is not None:
            cfg = replace(cfg, gamma_grid=tuple(a.gamma_grid))
        a.data_seeds = a.data_seeds or ([0, 1, 2] if kind == "review" else [0])
        cfg = replace(cfg, data_seed=a.data_seeds[0])
        if a.ablations or a.oracle:
            if kind != "demo":
                raise ConfigError("--ablations and --oracle belong to `bench demo`")
            cfg = replace(cfg, ablations=a.ablations or cfg.ablations,
                          baselines=cfg.baselines + (("oracle",) if a.oracle and "oracle" not in cfg.baselines else ()))
        suffix = "-quick" if a.quick else ""
        extra = {"k": cfg.k if a.quick else 100} if kind in ("ti", "ti-source") else {}
        json_name = kind
        if kind == "demo":
            extra["data_seeds"] = tuple(a.data_seeds)
            json_name = B.section_name(cfg, a.data_seeds)
        elif kind in ("average", "review"):
            extra["data_seeds"] = tuple(a.data_seeds)
        if kind == "review":
            from ..bench import review as R

            fn = R.bench_review
        elif kind == "scgs":
            from ..bench import scgs as S

            fn = S.bench_scgs
        elif kind == "average":
            from ..bench import average as A

            fn = A.bench_average
        else:
            fn = getattr(B if kind == "demo" else ablations, fn_name)
        res = fn(cfg, workdir=a.workdir + ("/quick" if a.quick else ""), doc=None if a.no_docs else DOC,
                                  json_path=None if a.no_docs else Path(f"docs/bench/{json_name}{suffix if kind != 'demo' else ''}.json"),
                                  on_progress=progress, **extra)
        if kind == "demo":
            from ..bench.seeds import demo_markdown as md_fn
        elif kind == "scgs":
            from ..bench.scgs import scgs_markdown as md_fn
        elif kind == "average":
            from ..bench.average import average_markdown as md_fn
        elif kind == "review":
            from ..bench.review import review_markdown as md_fn
        else:
            md_fn = getattr(ablations, markdown_name)
        md = md_fn(res)
        progress.close()
        print(md)
        return 0
    return run


for _kind, _help in (("demo", "end to end on the demo: ERM, JTT, DFR and DDB (each tuned on val), means with 95%% intervals "
                              "over data seeds × training seeds and paired differences → docs/benchmarks.md"),
                     ("pruning", "ablation: retraining with vs without pruning (Table 2 shape)"),
                     ("ti", "ablation: textual-inversion set size 0/10/20/30/40 (Table 5 shape); K = 100 per class, "
                            "seed 0 unless --seeds"),
                     ("ti-source", "which textual-inversion images (none / highest-loss / random / val minority) make a "
                                   "token that draws the target bird: the demo built per set, its candidates judged by the "
                                   "target-bird judges, DDB retrained on the kept ones; K = 100, seed 0 unless --seeds"),
                     ("recipe", "the retraining recipe: DDB with γ = 1 for epochs 1/2 and lr 1e-4/2e-4/5e-4, every "
                                "seed; the best mean val WGA is marked (after `bench demo`)"),
                     ("average", "what brings DDB's average accuracy back: γ, the generated share per batch and the "
                                 "number of accepted samples, one at a time, every seed (after `bench demo`)"),
                     ("review", "what a human look is worth: a simulated reviewer (an oracle, train group labels) "
                                "reviews 0/1/5/10/25%% of the candidates in queue, random and lowest-ρ order, judged by "
                                "the target-bird judges; DDB retrained on the 10%% queue review vs automatic pruning"),
                     ("scgs", "SCGS and JTT+SCGS as the SCGS paper does them (share of generated images chosen on val, "
                              "ordinary training on the union), beside the ERM and JTT of `bench demo`")):
    _stem = _kind.replace("-", "_")
    command(f"bench {_kind}", _help, _demo_bench_args)(_demo_bench(_kind, f"bench_{_stem}", f"{_stem}_markdown"))
