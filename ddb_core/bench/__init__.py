"""The benchmarks: each measures something with a command that lives in the repository and writes
its figures into ``docs/`` (``docs.py`` knows where).

- ``calibration`` — the demo's ERM against the group-balanced oracle, over seeds;
- ``masks`` — mean IoU of the offline masking backends against the demo's ground truth;
- ``precision`` — textual inversion in half precision;
- ``inpainter`` — quality gates of the demo's micro inpainting model;
- ``demo`` — end to end on the demo (ERM, JTT, DFR, oracle, DDB) and its ablations;
- ``app_scale``, ``app_launch`` — the review screen at 120,000 candidates, and the app's start-up.

Benchmarks call the facade (``ddb_core.api``) and the workbench; nothing outside this package
imports them except the command line.
"""
