"""Device and dtype, decided in one place.

CPU and float32 by default; float16 only on CUDA.
"""

from __future__ import annotations

from .errors import ConfigError

DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16"}


def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU, in this thread and in the threads it starts later.

    Fine-tuning drives some gradients and optimiser states into the denormal range, where CPU kernels
    run many times slower; they carry no signal. The flag is per thread and a new thread inherits its
    creator's, so a process calls this first, before torch starts its pool of compute threads (a call
    made later leaves the pool's threads slow, and the main thread waits for them at every step).
    """
    import torch

    torch.set_flush_denormal(True)


def check_device_name(name) -> str:
    """``name`` if it is a device setting (auto, cpu, cuda, cuda:N), else a ConfigError naming it."""
    import re

    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    return name


def check_dtype_name(name) -> str:
    if name != "auto" and name not in DTYPES:
        raise ConfigError(f"dtype must be one of auto, {', '.join(sorted(DTYPES))}; got {name!r}")
    return name


def cuda_available() -> bool:
    """Whether ``auto`` means CUDA (one function, so that a test can make it answer True on a CPU)."""
    import torch

    return torch.cuda.is_available()


def cuda_device(name: str):
    """The torch device of a CUDA name (one function, so that a test on a CPU-only machine can stand a CPU device
    with an index of its own in for each GPU, and see where every model was placed without one)."""
    import torch

    return torch.device(name)


def resolve_device(name: str = "auto"):
    """``auto`` → CUDA when available, else CPU. An explicit ``cuda`` without a GPU is an error."""
    import torch

    check_device_name(name)
    if name == "auto":
        return cuda_device("cuda") if cuda_available() else torch.device("cpu")
    if name.startswith("cuda") and not cuda_available():
        raise ConfigError(f"device {name!r} was asked for, but no CUDA device is available here")
    return cuda_device(name) if name.startswith("cuda") else torch.device(name)


def resolve_dtype(name: str, device) -> "torch.dtype":
    """``auto`` → float16 on CUDA, float32 on CPU; half precision on CPU is refused."""
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ConfigError(f"dtype must be one of auto, {', '.join(sorted(DTYPES))}; got {name!r}")
    dtype = getattr(torch, DTYPES[name])
    if device.type == "cpu" and dtype == torch.float16:
        raise ConfigError("dtype float16 needs a CUDA device; use float32 on the CPU")
    return dtype



IG_DTYPES = ("float32", "float16")


def ig_half(ig_dtype: str, device) -> bool:
    """Whether integrated gradients runs the classifier under float16 autocast: only when ``ig_dtype`` is
    ``float16``, which needs CUDA (``device``: a name or a torch device; ``auto`` counts as CUDA only when present)."""
    if ig_dtype not in IG_DTYPES:
        raise ConfigError(f"--ig-dtype {ig_dtype!r}: choose one of {', '.join(IG_DTYPES)}")
    if ig_dtype == "float32":
        return False
    kind = device.type if hasattr(device, "type") else resolve_device(str(device)).type
    if kind != "cuda":
        raise ConfigError(f"--ig-dtype float16 needs a CUDA device (this run's device: {device}); integrated gradients "
                          "runs in float32 on the CPU")
    return True


# ---------------------------------------------------------------------------------------------
# Where every model is moved: one function, so that a test can see every placement.

_watchers: list[list] = []


def place(module, device="auto", dtype=None, *, what: str):
    """Move ``module`` to ``device`` (a name, ``auto``, or a ``torch.device``) and, when given, ``dtype``.

    Every stage that runs a model moves it here, naming itself in ``what`` ("erm training",
    "scoring", "langsam detector", …); ``watch_placements`` lists the placements, which is how a test
    on a CPU-only machine proves that the device the user chose reaches every model."""
    import torch

    dev = device if isinstance(device, torch.device) else resolve_device(str(device or "auto"))
    for seen in _watchers:
        seen.append((what, str(dev)))
    return module.to(dev) if dtype is None else module.to(dev, dtype)


class watch_placements:
    """``with watch_placements() as seen:`` — ``seen`` lists (what, device) for every ``place`` call inside."""

    def __enter__(self) -> list:
        self.seen: list = []
        _watchers.append(self.seen)
        return self.seen

    def __exit__(self, *exc) -> None:
        _watchers.remove(self.seen)


def module_device(module):
    """The device a model's parameters are on (CPU for a model without parameters or a plain callable)."""
    import torch

    try:
        return next(module.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")
