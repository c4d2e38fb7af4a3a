"""The project's documents link to what exists: every in-page link (``](#…)``) of README.md and docs/ names one of
that file's headings as GitHub spells its anchor, and every relative link names a file or folder of the
repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters, digits, ``_``, ``-`` and spaces
    kept), spaces as hyphens; markup characters go with the punctuation."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> set[str]:
    out, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            out.add(anchor(line.lstrip("#")))
    return out


def test_anchor_spelling():
    assert anchor("Do the judges agree with a person's eyes? (`val-unit-12k`)") == \
        "do-the-judges-agree-with-a-persons-eyes-val-unit-12k"
    assert anchor("the unit-variance model, 12,000 steps: landbird → waterbird") == \
        "the-unit-variance-model-12000-steps-landbird--waterbird"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(doc: Path):
    text = doc.read_text(encoding="utf-8")
    own = headings(text)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, frag = target.partition("#")
        if not path:
            if frag not in own:
                broken.append(target)
        elif not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to nothing: {broken}"
