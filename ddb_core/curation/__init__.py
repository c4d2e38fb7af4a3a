"""Curation: what a person decides, and what leaves the project. Imports every wing below it (``project``,
``data``, ``classifiers``, ``method``, ``pipeline``).

- ``decisions`` — thresholds, automatic and manual decisions, the audit log, undo;
- ``review`` — the review model: every candidate as arrays, filters and sort orders;
- ``queue`` — the review queue and its signals;
- ``candidate_map`` — the map of candidates in the ERM model's feature space;
- ``reporting`` — reports of retrained models against ERM, with intervals;
- ``export`` — the curated dataset and the reproducibility bundle.
"""
