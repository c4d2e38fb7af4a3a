"""Where the benchmarks write: ``docs/benchmarks.md``, one section per benchmark between markers, so
that each benchmark rewrites its own section and leaves the others as they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

DOC = Path("docs/benchmarks.md")


def write_section(doc: Path, name: str, body: str) -> None:
    """Replace the section between ``<!-- name:start -->`` and ``<!-- name:end -->`` (or append it)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\nEvery figure here is written by the command named with it; none is edited by hand.\n"
    block = f"{start}\n{body}{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def write_result(res: dict, doc: Optional[Path], json_path: Optional[Path], section: str, md: str) -> None:
    """A benchmark's result: its JSON (when ``json_path``) and its section of ``doc`` (when ``doc``)."""
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=2))
    if doc:
        write_section(Path(doc), section, md)
