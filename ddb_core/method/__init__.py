"""The method: Diffusion Driven Balancing (Algorithm 1 of the paper), one module per step, and the
second method and the baselines beside it.

    1. ERM classifier f                          ddb_core.classifiers.training (the workbench trains it)
    2. textual inversion: one token [C_i]        inversion.py     Eq. 1
    3. D_i: the K lowest-loss images of class i  selection.py     (and Ψ_i, Eq. 3)
    4. M = LangSAM(x, "<class name>")            masking.py       (and grabcut, gradcam, provided)
       x' = SD-inpainting(x, M, "a photo of a [C_i'] <class name>")
                                                 inpainting.py
    5. ψ = softmax(f(x'))[i], ρ = Σ M · IG(x')  scoring.py       Eq. 3–5
       keep x' iff ψ < Ψ_i and ρ > P_i'          pruning.py       Algorithm 1
    6. retrain on D_train ∪ D'_i ∪ D'_i'         retraining.py    Eq. 6–8 (objective.py)

``scgs.py`` is the related SCGS method (misclassified images → clustering → Grad-CAM++ masks →
inpainting); ``baselines.py`` holds JTT, DFR and the group-balanced oracle.

The steps run on a project through the workbench (``ddb_core.pipeline.generation``, ``ddb_core.curation.decisions``,
``ddb_core.classifiers.training``); importing this package imports none of its modules.

Imports ``project``, ``data`` and ``classifiers``. Two steps reach up to the pipeline and curation (SCGS generates
with the pipeline's stage; retraining reads the reviewer's decisions), each import saying why.
"""
