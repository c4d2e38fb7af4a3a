"""Export: ``ddb export`` (the curated dataset, or the reproducibility bundle)."""

from __future__ import annotations


from .common import command, _add_project, _open


def _export_args(p):
    _add_project(p)
    p.add_argument("what", choices=["dataset", "bundle"],
                   help="dataset: the train split and every accepted candidate, one folder per class, with "
                        "manifest.csv; bundle: a zip of configs, seeds, thresholds, hashes, runs and reports")
    p.add_argument("--out", help="where to write it (default: the project's exports/ folder, named by the time)")
    p.add_argument("--method", default="all", help="dataset: candidates of this method only (ddb, scgs; default all)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out (a file for bundle, an earlier export for dataset); never one of "
                        "the project's own files or folders")


@command("export", "write the curated dataset, or the reproducibility bundle, as the app's Export screen does", _export_args)
def _export(a, progress):
    from .. import api

    project = _open(a)
    if a.what == "bundle":
        r = api.reproducibility_bundle(project, a.out, force=a.force)
        print(f"bundle with {r['models']} models, {r['tokens']} tokens, {r['runs']} runs: {r['path']}")
        return 0
    r = api.export_dataset(project, a.out, method=a.method, on_progress=progress, force=a.force)
    progress.close()
    print(f"exported {r['real_images']} train images and {r['generated_images']} accepted samples to {r['path']}")
    return 0
