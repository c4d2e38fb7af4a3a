"""The offline demo: a procedurally generated Waterbirds-like benchmark (``data``), the micro Stable
Diffusion inpainting model the project trains on it and ships (``micro_sd``, ``micro_train``), and
the pipeline that prepares the demo project's candidates (``pipeline``). Nothing here is needed on a
real dataset; the same method and workbench code runs both.

Imports the wings below it (``project`` up to ``curation``); the facade (``api``) builds the demo project with it.
"""
