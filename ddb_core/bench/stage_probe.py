"""One stage of ``bench fullscale`` in its own process: a ``ddb`` command run as the command line runs
it, with its wall seconds, the seconds spent loading models (timed around the loaders), the UNet's
seconds (a forward hook on every ``UNet2DConditionModel``), and the process's peak memory, written
as JSON to the file named first.

    python -m ddb_core.bench.stage_probe OUT.json -- COMMAND [ARGS …]
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path

class _Peak:
    """The peak resident memory of this process, sampled every 50 ms (and ru_maxrss at the end)."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                for line in Path("/proc/self/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return

    def stop(self) -> int:
        self._stop.set()
        return max(self.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def probe(out: Path, argv: list[str]) -> int:
    """Run one CLI command here; write its seconds, load seconds, UNet step seconds and peak memory to ``out``."""
    import torch
    from diffusers import UNet2DConditionModel

    # upward: the probe measures a stage as a user runs it, through the command line's own main
    from .. import cli
    from ..classifiers import models
    from ..method import inpainting, masking

    peak = _Peak()
    timing = {"load": 0.0, "unet": 0.0, "unet_calls": 0}

    import functools

    def timed(fn):
        @functools.wraps(fn)  # keeps the signature: the CLI checks options against it
        def wrapper(*a, **kw):
            t = time.monotonic()
            try:
                return fn(*a, **kw)
            finally:
                timing["load"] += time.monotonic() - t
        return wrapper

    inpainting.Inpainter.load = classmethod(timed(inpainting.Inpainter.load.__func__))
    masking.LangSAMMasker.load = classmethod(timed(masking.LangSAMMasker.load.__func__))
    models.load_classifier = timed(models.load_classifier)
    starts: dict[int, float] = {}

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def pre(module, args):
        if isinstance(module, UNet2DConditionModel):
            sync()
            starts[id(module)] = time.monotonic()

    def post(module, args, output):
        if isinstance(module, UNet2DConditionModel) and id(module) in starts:
            sync()
            timing["unet"] += time.monotonic() - starts.pop(id(module))
            timing["unet_calls"] += 1

    torch.nn.modules.module.register_module_forward_pre_hook(pre)
    torch.nn.modules.module.register_module_forward_hook(post)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    rc = cli.main(argv)
    seconds = time.monotonic() - t0
    res = {"rc": rc, "seconds": seconds, "load_seconds": timing["load"], "unet_seconds": timing["unet"],
           "unet_calls": timing["unet_calls"], "peak_rss_bytes": peak.stop(),
           "cuda_peak_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None}
    out.write_text(json.dumps(res))
    return rc




if __name__ == "__main__":
    from ..project.device import flush_denormals

    flush_denormals()
    sep = sys.argv.index("--")
    sys.exit(probe(Path(sys.argv[1]), sys.argv[sep + 1:]))
