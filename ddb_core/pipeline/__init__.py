"""The pipeline: the method's steps run over a whole project, as resumable jobs. Imports ``project``, ``data``,
``classifiers`` and ``method``.

- ``generation`` — the stages over the project: masks, tokens, generation, scoring (each resumable);
- ``engines`` and ``work`` — where the stages run (local or Ray) and the units of work both engines run;
- ``components`` — the inpainter, masker and engine built from the project's settings;
- ``run_config`` — the one-file run config of ``ddb run``, checked before any stage runs;
- ``regenerate`` — one candidate made again with a mask the reviewer drew;
- ``igmaps`` — the integrated-gradients maps, stored compactly.
"""
