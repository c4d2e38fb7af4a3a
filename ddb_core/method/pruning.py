"""Pruning, the rule of Algorithm 1: keep a candidate x' (made from x of class i for class i') iff

    ψ = softmax(f(x'))[i] < Ψ_i        (Eq. 3: Ψ_i, the mean softmax of class i over its training images)
    ρ = Σ_k M_k · IG_k(x') > P_i'      (Eq. 4–5: the attribution mass inside the mask)

The first condition says the edit moved the prediction away from the source class; the second
that the change that moved it lies inside the mask. This module holds the rule on arrays and
the default of P; the thresholds of a project, the manual decisions that override the rule and
their audit log are the workbench's (``ddb_core.curation.decisions``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

# P_i' defaults to this quantile of the ρ of class i' 's candidates: the paper's values (0.3–2 on a
# ResNet-50 at 224 px) do not transfer to other classifiers.
DEFAULT_P_QUANTILE = 0.25


def auto_keep(psi: np.ndarray, rho: np.ndarray, Psi: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Algorithm 1 on arrays: ψ < Ψ_i (Eq. 3) and ρ > P_i' (Eq. 5). NaN scores are not kept."""
    with np.errstate(invalid="ignore"):
        return (psi < Psi) & (rho > P)


def suggest_P(rhos: Iterable[float], quantile: float = DEFAULT_P_QUANTILE) -> float:
    """The default P_i': a quantile of the finite ρ values given (0.0 when there are none)."""
    r = np.asarray([x for x in rhos if x is not None and np.isfinite(x)], dtype=np.float64)
    return float(np.quantile(r, quantile)) if r.size else 0.0
