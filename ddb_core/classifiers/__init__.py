"""Classifiers: the models that are trained, loaded and evaluated. Imports ``project`` and ``data``.

- ``models`` — building and loading classifiers (ResNets, checkpoints loaded with ``weights_only``);
- ``training`` — the training loop (ERM, the oracle, retraining's upweighted loss), resumable;
- ``evaluation`` — per-group accuracy, worst-group accuracy, reports' numbers.
"""
