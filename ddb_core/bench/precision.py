"""Textual inversion in half precision, as it runs on a GPU (``ddb bench precision``): whether every
loss is finite, the dtype of the trained row and of the optimiser's state, and seconds per step."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

from .docs import DOC, write_result


def bench_precision(model: str = "data/models/micro-sd-inpainting", device: str = "auto", dtypes: Sequence[str] = ("auto",),
                    steps: int = 40, repeats: int = 3, doc: Optional[Path] = DOC,
                    json_path: Optional[Path] = Path("docs/bench/precision.json")) -> dict:
    """Textual inversion of one token on ``model`` in each of ``dtypes`` (``auto``: float16 on CUDA,
    float32 on CPU): whether every loss is finite, the dtype of the trained row and of AdamW's state,
    and the median seconds per step over ``repeats`` runs. Writes a section of docs/benchmarks.md."""
    import numpy as np

    from ..project.device import resolve_device, resolve_dtype
    from ..method.inpainting import Inpainter
    from ..method.inversion import InversionConfig, learn_token

    dev = resolve_device(device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48 + 8 * k, 64, 3), dtype=np.uint8) for k in range(4)]
    rows = []
    for name in dtypes:
        dt = resolve_dtype(name, dev)
        runs = []
        for r in range(repeats):
            inp = Inpainter.load(model, device=str(dev), dtype=str(dt).removeprefix("torch."))
            t0 = time.monotonic()
            res = learn_token(inp.pipe, images, f"<probe{r}>", "bird", cfg=InversionConfig(steps=steps, batch_size=2, seed=r, region="image"))
            runs.append({"seconds_per_step": (time.monotonic() - t0) / steps, "finite": bool(np.isfinite(res.loss_curve).all()),
                         "final_loss": float(np.mean(res.loss_curve[-10:])), "train_dtype": res.train_dtype,
                         "model_dtype": res.model_dtype})
        rows.append({"dtype": str(dt).removeprefix("torch."), "runs": runs,
                     "median_seconds_per_step": statistics.median(x["seconds_per_step"] for x in runs),
                     "all_finite": all(x["finite"] for x in runs), "train_dtype": runs[0]["train_dtype"]})
    res = {"device": str(dev), "device_name": _device_name(dev), "model": model, "steps": steps, "repeats": repeats,
           "rows": rows, "command": f"python -m ddb_core bench precision --device {device} --dtypes {' '.join(dtypes)}"}
    write_result(res, doc, json_path, "precision", precision_markdown(res))
    return res


def _device_name(dev) -> str:
    if dev.type == "cuda":
        import torch

        return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()} CPU"


def precision_markdown(res: dict) -> str:
    lines = [f"## Textual inversion in half precision ({res['device_name']})", "",
             f"`{res['command']}` — {res['steps']} steps of one token on `{res['model']}`, {res['repeats']} runs per "
             f"precision. The UNet and the VAE run in the given precision; the text encoder is moved to float32 for the "
             f"inversion, so the trained row and AdamW's state are float32.", "",
             "| model precision | every loss finite | row and optimiser state | s per step (median) |",
             "| --- | --- | --- | ---: |"]
    for r in res["rows"]:
        lines.append(f"| {r['dtype']} | {'yes' if r['all_finite'] else '**no**'} | {r['train_dtype']} | "
                     f"{r['median_seconds_per_step']:.3f} |")
    if res["device"] == "cpu":
        lines += ["", "On a CPU, float16 is refused (`--dtype float16` needs CUDA); bfloat16 runs the same half-precision "
                      "code path. The float16 run on a CUDA GPU is `--device cuda --dtypes float16` (not run here: no GPU "
                      "was available to this measurement)."]
    return "\n".join(lines)
