"""Moved to ``ddb_core.bench.app_launch`` (the benchmarks' wing); this alias keeps
``python -m ui.bench_launch`` working for one release."""

from ddb_core.bench.app_launch import *  # noqa: F401,F403
from ddb_core.bench.app_launch import main

if __name__ == "__main__":
    main()
