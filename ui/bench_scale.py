"""Moved to ``ddb_core.bench.app_scale`` (the benchmarks' wing); this alias keeps
``python -m ui.bench_scale`` working for one release."""

from ddb_core.bench.app_scale import *  # noqa: F401,F403
from ddb_core.bench.app_scale import main

if __name__ == "__main__":
    main()
