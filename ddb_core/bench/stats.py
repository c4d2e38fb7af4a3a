"""Intervals for benchmark figures measured over data seeds × training seeds.

A figure of a method (test WGA, say) has one value per (data seed d, training seed s). Data seeds
are independent draws of the benchmark (its images, and everything the pipeline builds on them:
the ERM models, the candidates, the thresholds); training seeds are replicates within a data seed.
Both are random effects, so the mean over all values varies with the data seeds drawn, not only
with the training seeds: in a balanced nested design the variance of the grand mean is
MS_between / (D·S), which equals var(per-data-seed means) / D. The 95% interval is therefore the
t-interval on the D per-data-seed means (D − 1 degrees of freedom). With a single data seed it is
the t-interval over training seeds (S − 1 degrees of freedom), and it then says nothing about
another draw of the data — ``Interval.scope`` says which.

A paired difference (method A − method B) is taken within each (d, s) — both trained from the
same seed's ERM model on the same data — and gets the same interval. A difference is *shown* only
where its interval excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

Values = Mapping[int, Sequence[float]]  # data seed -> values over training seeds


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: Optional[float]  # None when there is a single value
    hi: Optional[float]
    n_data: int  # data seeds
    n_values: int  # data seeds × training seeds
    scope: str  # "data seeds" | "training seeds" | "one value"

    @property
    def shown(self) -> Optional[bool]:
        """Whether the interval excludes zero (for a difference); None without an interval."""
        if self.lo is None or self.hi is None:
            return None
        return self.lo > 0 or self.hi < 0

    def to_dict(self) -> dict:
        return {**asdict(self), "shown": self.shown}


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def interval(values: Values) -> Interval:
    """Mean and 95% interval of values over data seeds × training seeds (see the module's text)."""
    groups = {d: [float(v) for v in vs if v is not None and math.isfinite(float(v))] for d, vs in values.items()}
    groups = {d: vs for d, vs in groups.items() if vs}
    if not groups:
        raise ValueError("no values to summarise")
    every = [v for vs in groups.values() for v in vs]
    mean = sum(every) / len(every)
    if len(groups) >= 2:
        means = [sum(vs) / len(vs) for vs in groups.values()]
        sample, scope = means, "data seeds"
    elif len(every) >= 2:
        sample, scope = every, "training seeds"
    else:
        return Interval(mean, None, None, len(groups), len(every), "one value")
    m = sum(sample) / len(sample)
    sd = math.sqrt(sum((x - m) ** 2 for x in sample) / (len(sample) - 1))
    half = t975(len(sample) - 1) * sd / math.sqrt(len(sample))
    centre = m if scope == "data seeds" else mean  # the same number when the design is balanced
    return Interval(centre, centre - half, centre + half, len(groups), len(every), scope)


def paired(a: Mapping[int, Mapping[int, float]], b: Mapping[int, Mapping[int, float]]) -> Interval:
    """Interval of A − B, paired within each (data seed, training seed) present in both."""
    diffs: dict[int, list[float]] = {}
    for d, by_seed in a.items():
        for s, v in by_seed.items():
            w = b.get(d, {}).get(s)
            if v is not None and w is not None:
                diffs.setdefault(d, []).append(float(v) - float(w))
    if not diffs:
        raise ValueError("no (data seed, training seed) pair has both values")
    return interval(diffs)


def verdict(iv: Interval, unit: str = " points", scale: float = 100.0) -> str:
    """How the docs state a difference: a result only where the interval excludes zero."""
    if iv.shown is None:
        return f"{iv.mean * scale:+.1f}{unit} from one value: no interval, no difference shown"
    span = f"{iv.mean * scale:+.1f}{unit} [{iv.lo * scale:+.1f}, {iv.hi * scale:+.1f}]"
    if not iv.shown:
        return f"{span}: no difference shown"
    return f"{span}: **{'higher' if iv.lo > 0 else 'lower'}**"
