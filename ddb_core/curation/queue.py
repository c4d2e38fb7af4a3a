"""The review queue: which candidates a person should look at first, and why.

Every signal uses what the project already holds and no group label; each is a number in [0, 1]
(1 = look here), and the priority is their plain sum (0 to 7). Equal weights are a choice made on
principle, not fitted to any result: each signal names one way a generation can fail or a pruning
decision can be wrong.

``near Ψ``      exp(-|logit ψ - logit Ψ_i| / s): ψ close to its threshold, in units of s, the spread
                (IQR / 1.349) of logit ψ over the direction's scored candidates — a small change of Ψ
                flips it.
``near P``      exp(-|ρ - P_j| / s), s the spread of ρ in the direction: the same for the ρ rule.
``rules split`` 1 when the ψ rule (ψ < Ψ_i) and the ρ rule (ρ > P_j) disagree.
``unchanged``   1 - change / median change of the direction, clipped to [0, 1]: a generation that
                repainted nothing or almost nothing inside its mask (change: mean |x' - x| / 255).
``like source`` on the map of the candidates (ERM features, 2-D): 2·(d_t / (d_t + d_s) - 1/2), clipped,
                with d_t, d_s the distances to the centres of the real images of the target and of the
                source class — a candidate that sits with its source class did not change class.
``weak box``    1 - the masker's detection score (langsam's box score; 0 for maskers without one).
``object lost`` 1 - the score of the object found again in the result (langsam projects, ``ddb refind``:
                GroundingDINO with the class's object word, its best box inside the mask's box; 0 when not
                looked for) — a generation in which the detector no longer finds the object is a failure a
                person would reject.

``ddb bench review`` checks each signal against a judge that shares nothing with the reviewer: a signal stays
when the candidates it flags hold failures or wrong automatic decisions (a failure kept, a good one pruned) more
often than chance, since that is where a look changes a decision; one no better than chance at either is removed.

A signal that cannot be computed (not scored, no map, no detection score) counts 0. The queue orders
the candidates nobody has decided by priority, highest first (ties by id), then the decided ones. The
order sorts 16-bit keys (numpy's stable sort is a radix sort on them), so that it is redone after every
decision and threshold change within the review screen's budgets at a million candidates.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

SIGNALS = ("near Ψ", "near P", "rules split", "unchanged", "like source", "weak box", "object lost")
_LEVELS = 60_000  # priority → key resolution; decided candidates get the key after every undecided one


def _spread(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return 1.0
    q1, q3 = np.percentile(v, [25, 75])
    return max(float(q3 - q1) / 1.349, 1e-3)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Queue:
    """Signals of every candidate of a ``review.ReviewIndex``: the ones no threshold changes are computed
    once, the others at each call with the thresholds asked for."""

    def __init__(self, index):
        self.index = index
        n = len(index)
        self.lpsi = _logit(index.psi).astype(np.float32)
        self.spread_psi = np.ones(n, np.float32)
        self.spread_rho = np.ones(n, np.float32)
        self.unchanged = np.zeros(n, np.float32)
        for i, j in index.directions:
            sel = (index.src == i) & (index.tgt == j)
            ok = sel & index.scored
            self.spread_psi[sel] = _spread(self.lpsi[ok])
            self.spread_rho[sel] = _spread(index.rho[ok])
            ch = index.change[sel]
            med = float(np.nanmedian(ch)) if np.isfinite(ch).any() else np.nan
            if np.isfinite(med) and med > 0:
                self.unchanged[sel] = np.nan_to_num(np.clip(1 - ch / med, 0, 1), nan=0.0)
        det = index.det
        self.weak_box = np.nan_to_num(np.clip(1 - det, 0, 1), nan=0.0).astype(np.float32)
        self.object_lost = np.nan_to_num(np.clip(1 - index.refound, 0, 1), nan=0.0).astype(np.float32)
        self.like_source = self._map_signal()
        self._memo = None

    def _map_signal(self) -> np.ndarray:
        """2·(d_t / (d_t + d_s) - 1/2), clipped to [0, 1], on the map of the active ERM model (0 without one)."""
        index, out = self.index, np.zeros(len(self.index), np.float32)
        db, mid = index.project.db, index.project.active_erm_id
        if mid is None or not len(index):
            return out
        row = db.execute("select method from map_points where erm_model_id = ? and kind = 'candidate' limit 1",
                         [mid]).fetchone()
        if row is None:
            return out
        method = row[0]
        real = db.execute("select s.label, avg(m.x), avg(m.y) from map_points m join samples s on s.id = m.item_id "
                          "where m.kind = 'source' and m.erm_model_id = ? and m.method = ? group by s.label",
                          [mid, method]).fetchall()
        centre = {int(c): np.array([x, y]) for c, x, y in real}
        pts = np.array(db.execute("select item_id, x, y from map_points where kind = 'candidate' and erm_model_id = ? "
                                  "and method = ? order by item_id", [mid, method]).fetchall(), np.float64).reshape(-1, 3)
        if not len(pts) or len(centre) < 2:
            return out
        at, found = index.pos.lookup(pts[:, 0].astype(np.int64))
        at, xy = at[found], pts[found, 1:]
        src, tgt = index.src[at], index.tgt[at]
        known = np.array([int(s) in centre and int(t) in centre for s, t in zip(src, tgt)], bool)
        at, xy, src, tgt = at[known], xy[known], src[known], tgt[known]
        cs = np.array([centre[int(s)] for s in src]).reshape(-1, 2)
        ct = np.array([centre[int(t)] for t in tgt]).reshape(-1, 2)
        d_s, d_t = np.linalg.norm(xy - cs, axis=1), np.linalg.norm(xy - ct, axis=1)
        ratio = np.divide(d_t, d_s + d_t, out=np.full(len(at), 0.5), where=(d_s + d_t) > 0)
        out[at] = np.clip(2 * (ratio - 0.5), 0, 1)
        return out

    def signals(self, Psi: dict, P: dict, at=slice(None)) -> dict[str, np.ndarray]:
        """Each signal of every candidate (or of the positions ``at``) at these thresholds (Ψ per source
        class, P per target class)."""
        index = self.index
        src, tgt, psi, rho = index.src[at], index.tgt[at], index.psi[at], index.rho[at]
        psi_t = np.array([Psi.get(c, np.nan) for c in range(index.n_classes)], np.float64)[src]
        p_t = index._p_table(P)[index.method[at], tgt]  # each method's P, as the pruning uses it
        off = index.unpruned[at]
        psi_t[off] = p_t[off] = np.nan  # a method that does not prune has no rule to be near
        with np.errstate(invalid="ignore"):
            near_psi = np.exp(-np.abs(self.lpsi[at] - _logit(psi_t)) / self.spread_psi[at])
            near_rho = np.exp(-np.abs(rho - p_t) / self.spread_rho[at])
            split = ((psi < psi_t) != (rho > p_t)) & index.scored[at] & np.isfinite(psi_t) & np.isfinite(p_t)
        return {"near Ψ": np.nan_to_num(near_psi, nan=0.0).astype(np.float32),
                "near P": np.nan_to_num(near_rho, nan=0.0).astype(np.float32),
                "rules split": split.astype(np.float32), "unchanged": self.unchanged[at],
                "like source": self.like_source[at], "weak box": self.weak_box[at], "object lost": self.object_lost[at]}

    def priority(self, Psi: dict, P: dict) -> np.ndarray:
        return sum(self.signals(Psi, P).values())

    def order(self, Psi: dict, P: dict) -> np.ndarray:
        """Positions in queue order: undecided by priority (highest first, ties by id), then the decided ones.
        Remembered until the thresholds or a decision change."""
        key = (tuple(sorted(Psi.items())), tuple(sorted(P.items())), self.index.manual.tobytes().__hash__())
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        pr = self.priority(Psi, P)
        keys = np.round((1 - pr / len(SIGNALS)) * _LEVELS).astype(np.uint16)
        keys[self.index.manual != 0] = np.iinfo(np.uint16).max
        order = np.argsort(keys, kind="stable")
        self._memo = (key, order)
        return order

    def why(self, k: int, Psi: dict, P: dict) -> dict:
        """The priority of the candidate at position ``k`` and its signals, with the values behind them."""
        index = self.index
        sig = {name: float(v[0]) for name, v in self.signals(Psi, P, np.array([k])).items()}
        i, j = int(index.src[k]), int(index.tgt[k])
        facts = {"near Ψ": f"ψ {index.psi[k]:.4f} vs Ψ {Psi.get(i, float('nan')):.4f}",
                 "near P": f"ρ {index.rho[k]:.3g} vs P {index._p_table(P)[index.method[k], j]:.3g}",
                 "rules split": "the ψ rule and the ρ rule disagree",
                 "unchanged": f"change inside the mask {index.change[k]:.3f}",
                 "like source": "on the map, nearer the real images of its source class",
                 "weak box": f"detection score {index.det[k]:.2f}",
                 "object lost": f"the object found again with score {index.refound[k]:.2f}"}
        rank = np.nonzero(self.order(Psi, P) == k)[0]
        return {"priority": round(sum(sig.values()), 3), "signals": {s: round(v, 3) for s, v in sig.items()},
                "reasons": [f"{s} {v:.2f} ({facts[s]})" for s, v in sorted(sig.items(), key=lambda x: -x[1]) if v >= 0.2],
                "rank": int(rank[0]) + 1 if len(rank) else None, "decided": bool(index.manual[k])}

    def next_undecided(self, Psi: dict, P: dict, after: Optional[int] = None) -> Optional[int]:
        """The id of the first candidate in the queue that no one has decided (other than ``after``)."""
        order = self.order(Psi, P)
        undecided = order[self.index.manual[order] == 0]
        if after is not None:
            undecided = undecided[self.index.ids[undecided] != int(after)]
        return int(self.index.ids[undecided[0]]) if len(undecided) else None
