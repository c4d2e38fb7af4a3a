"""Words the benchmark reports share: the inpainting model's note, how γ was chosen, the γ search lines
and the names of the textual-inversion sets."""

from __future__ import annotations

TI_WORDS = {"high_loss": "highest-loss train", "random": "random train", "val_minority": "val minority-group"}


def _model_note(res: dict) -> str:
    sha = res.get("model_sha256")
    return f"; inpainting model `{res['config']['model']}`" + (f" (weights sha256 {sha}…)" if sha else "")


def _gamma_words(c: dict) -> str:
    if c.get("gamma_grid"):
        grid = ", ".join(f"{g:g}" for g in c["gamma_grid"])
        if c.get("per_class_gamma"):
            return f"γ per class chosen by val WGA among every combination of {grid} with seed {c['seeds'][0]}, as the paper tunes it"
        return f"γ (the same for every class) chosen by val WGA among {grid} with seed {c['seeds'][0]}, as the paper tunes it"
    return f"γ = {c['gammas'] or 'one per class, 1.0'}"


def _gamma_lines(rows: list[dict]) -> list[str]:
    from ..method.retraining import gamma_label
    from ..curation.reporting import _pct

    out = []
    for r in rows:
        table = r.get("gamma_search")
        if table:
            out.append(f"- γ search for {r['method']} (seed of the search; val WGA % / val accuracy %): " + ", ".join(
                f"{gamma_label(t)}: {_pct(t['val_wga'])} / {_pct(t['val_acc'])}{' (chosen)' if t['chosen'] else ''}"
                for t in table))
    return out
