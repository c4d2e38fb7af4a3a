"""The benchmarks: each measures something with a command that lives in the repository and writes
its figures into ``docs/`` (``docs.py`` knows where).

- ``calibration`` — the demo's ERM against the group-balanced oracle, over seeds;
- ``masks`` — mean IoU of the offline masking backends against the demo's ground truth;
- ``precision`` — textual inversion in half precision;
- ``inpainter`` — quality gates of the demo's micro inpainting model;
- ``demo`` — end to end on the demo (ERM, JTT, DFR, oracle, DDB); ``seeds`` and ``stats`` its summary over
  data seeds and their intervals; ``ablations`` (pruning, textual-inversion set size and source, the recipe),
  ``average``, ``review`` (what a human look is worth) and ``scgs`` on the same projects;
- ``judges``, ``eye_check`` — judges that look where the bird was repainted, and their check against a person's eyes;
- ``fullscale`` and ``plan`` — the real architectures at full size end to end, and the 120,000-candidate plan;
- ``app_scale``, ``app_launch``, ``review_browser`` — the review screen at 120,000 candidates, the app's start-up,
  key presses in a browser.

Benchmarks call the facade (``ddb_core.api``) and the wings below it, the app (``ui``) included; nothing outside
this package imports them except the command line.
"""
