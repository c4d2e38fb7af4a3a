"""Where masking, generation and scoring run: in this process (``local``, the default) or on a Ray cluster (``ray``).

The job (``generation.compute_masks``, ``generation.generate``, ``generation.score``) stays on the driver: it reads the pending work
from the project database, cuts it into the same batches for either engine, and writes every file
and row itself, atomically and in the same form, so a project cannot tell which engine made a
candidate (its provenance is the same). The Ray engine only moves the model calls:

- the batches become a Ray Dataset with one row per batch (so a batch is the same batch on either
  engine and its pixels are equal) and one block per row (a retried task redoes one batch);
- ``map_batches`` runs them on a pool of ``workers`` actors, each loading the model once — the
  inpainting pipeline with the project's learned tokens, sent as bytes and verified, or the ERM
  classifier, sent as its state dict;
- results stream back to the driver as they finish. A worker that dies is restarted and its batch
  retried by Ray; the driver skips a result it already stored, so there is no duplicate. A driver
  killed mid-run loses at most the results in flight: the same command resumes.

Workers read the inputs (source images, masks, generated images) by absolute path: on one machine
that is the project folder itself; on a cluster the project folder must be on a filesystem that every
node mounts at the same path (read-only use). Only the driver writes, so SQLite is never written from
several machines. ``address=None`` starts a local Ray for the run; ``"auto"`` or ``ray://HOST:PORT``
joins a running cluster.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..project.errors import ConfigError, DDBError, ProjectError
from ..project.progress import CancelToken, check_cancel

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "local"  # local | ray
    address: Optional[str] = None  # ray: None = a local Ray started for the run; "auto" or "ray://HOST:PORT"
    workers: int = 1  # ray: actors, each with its own copy of the model
    gpus_per_worker: float = 0.0  # ray: GPUs per actor (1 = one model per GPU)
    cpus_per_worker: float = 1.0  # ray: CPUs per actor (its torch threads on CPU)

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.kind!r}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")

    @staticmethod
    def from_dict(d: Optional[dict]) -> "EngineConfig":
        d = dict(d or {})
        unknown = set(d) - set(asdict(EngineConfig()))
        if unknown:
            raise ConfigError(f"engine settings: unknown field(s) {', '.join(sorted(unknown))}")
        return EngineConfig(**d)

    def describe(self) -> str:
        if self.kind == "local":
            return "local (this process)"
        where = self.address or "a local Ray started for the run"
        gpus = f", {self.gpus_per_worker:g} GPU each" if self.gpus_per_worker else ""
        return f"ray ({self.workers} worker{'s' if self.workers != 1 else ''}{gpus}; {where})"


def _ray():
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is in requirements.txt
        raise ConfigError("the ray engine needs the ray package: pip install -r requirements.txt") from e
    return ray


def _connect(engine: EngineConfig) -> bool:
    """Join (or start) Ray; True when this call started the connection (and so ends it)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    opts = {"log_to_driver": False, "include_dashboard": False}
    try:
        if engine.address:
            ray.init(address=engine.address, log_to_driver=False)
        else:
            cpus = max(os.cpu_count() or 1, int(engine.workers * engine.cpus_per_worker + 0.999))
            ray.init(num_cpus=cpus, **opts)
    except ConnectionError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {engine.address!r}: {e}") from e
    return True


def run_on_ray(engine: EngineConfig, actor_cls: type, ctor_kwargs: dict, payloads: list[bytes],
               cancel: Optional[CancelToken] = None, what: str = "work") -> Iterator[tuple[int, object]]:
    """(index, result) for each payload as the actors finish it, in no particular order."""
    if not payloads:
        return
    ray = _ray()
    started = _connect(engine)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"i": k, "payload": p} for k, p in enumerate(payloads)],
                                 override_num_blocks=len(payloads))
        remote = {"num_gpus": engine.gpus_per_worker} if engine.gpus_per_worker else {}
        mapped = ds.map_batches(actor_cls, fn_constructor_kwargs=ctor_kwargs, batch_size=1, batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(size=engine.workers),
                                num_cpus=engine.cpus_per_worker, **remote)
        for row in mapped.iter_rows():
            check_cancel(cancel, f"between {what} results")
            result = pickle.loads(row["result"])
            if isinstance(result, dict) and "error" in result:
                raise _plain_error(result["error"], what, int(row["i"]))
            yield int(row["i"]), result
    finally:
        if started:
            ray.shutdown()


def worker_device(engine: EngineConfig, device: str) -> str:
    """The device of a Ray worker. A worker sees only the GPU Ray reserved for it (Ray sets its
    ``CUDA_VISIBLE_DEVICES``), as ``cuda:0``: ``auto``, ``cuda`` and ``cuda:N`` all name that one GPU when it
    reserved one (``gpus_per_worker`` > 0; ``cuda:1`` inside the worker would name a GPU it cannot see).
    Reserving none, ``auto`` is the CPU, and a CUDA name is refused: the worker would use a GPU that Ray did
    not give it. ``cpu`` is the CPU either way."""
    if device == "cpu":
        return "cpu"
    cuda = device == "cuda" or device.startswith("cuda:")
    if device != "auto" and not cuda:
        raise ConfigError(f"--device {device!r}: choose auto, cpu or cuda[:N]")
    if engine.gpus_per_worker > 0:
        return "cuda"
    if cuda:
        raise ConfigError(f"--device {device} with the Ray engine needs --gpus-per-worker above 0: a worker uses only "
                          f"the GPU Ray reserves for it, and reserves none with --gpus-per-worker 0 (use --device cpu or "
                          f"auto to run the workers on their CPUs)")
    return "cpu"


def _threads(cpus: float) -> None:
    import torch

    from ..project.device import flush_denormals

    flush_denormals()  # first, so that the compute threads started below inherit it
    torch.set_num_threads(max(1, int(cpus)))


def _errors_as_results(fn: Callable[[dict], object]) -> Callable[[dict], dict]:
    """A batch whose inputs are bad (not a worker fault) comes back as its error, not as endless retries:
    a ``DDBError`` (an unreadable image, a bad mask, …) as the error itself, so that the driver raises
    exactly what the local engine raises for the same input."""
    import numpy as np

    def call(batch: dict) -> dict:
        out = []
        for payload in batch["payload"]:
            try:
                out.append(pickle.dumps(fn(pickle.loads(payload))))
            except DDBError as e:
                out.append(pickle.dumps({"error": e}))
            except (OSError, ValueError) as e:
                out.append(pickle.dumps({"error": f"{type(e).__name__}: {e}"}))
        return {"i": batch["i"], "result": np.array(out, dtype=object)}
    return call


def _plain_error(error, what: str, index: int) -> Exception:
    """The driver's error for a worker's: a ``DDBError`` as the worker raised it (the local engine's
    message), anything else named with its batch."""
    if isinstance(error, DDBError):
        return error
    return ProjectError(f"a Ray worker failed on {what} batch {index}: {error}")


class MaskActor:
    """One masker per actor, built from its name and options on the device the worker reserved (GroundingDINO and SAM
    for langsam). A masker that reads the project (gradcam: its ERM model; provided: the dataset's masks) opens it
    read-only: only the driver writes."""

    def __init__(self, name: str, options: dict, project_root: str, device: str = "cpu", cpus: float = 1.0):
        from ..method.masking import build_masker
        from ..project.store import Project

        _threads(cpus)
        project = Project(project_root, read_only=True) if name in ("gradcam", "provided") else None
        self.masker = build_masker(name, project=project, device=device, **options)
        self._call = _errors_as_results(self._mask)

    def _mask(self, job: dict) -> list:
        from .work import mask_batch

        return mask_batch(self.masker, job["items"])

    def __call__(self, batch: dict) -> dict:
        return self._call(batch)


def mask_on_ray(engine: EngineConfig, spec: tuple[str, dict], project_root: Path, batches: list[list[dict]],
                cancel: Optional[CancelToken] = None, device: str = "auto") -> Iterable[tuple[int, list]]:
    """(batch index, one ``MaskResult`` per item) for each batch, as the workers finish them."""
    name, options = spec
    kw = {"name": name, "options": options, "project_root": str(Path(project_root).resolve()),
          "device": worker_device(engine, device), "cpus": engine.cpus_per_worker}
    payloads = [pickle.dumps({"items": b}) for b in batches]
    yield from run_on_ray(engine, MaskActor, kw, payloads, cancel, "masking")


class InpaintActor:
    """One inpainting pipeline per actor, with the project's tokens loaded and verified."""

    def __init__(self, model: str, device: str, dtype: str, tokens: dict[str, bytes], cpus: float = 1.0):
        from ..method.inpainting import Inpainter

        _threads(cpus)
        self.inp = Inpainter.load(model, device=device, dtype=dtype)
        with tempfile.TemporaryDirectory() as tmp:
            for k, (token, data) in enumerate(tokens.items()):
                path = Path(tmp) / f"token{k}.safetensors"
                path.write_bytes(data)
                self.inp.load_token(path, token)  # verifies the row in the text encoder
        self._call = _errors_as_results(self._inpaint)

    def _inpaint(self, job: dict) -> dict:
        import time

        from .work import inpaint_batch

        t0 = time.monotonic()
        images = inpaint_batch(self.inp, job["items"], job["cfg"])
        return {"images": images, "seconds": time.monotonic() - t0, "model_sha": self.inp.model_sha}

    def __call__(self, batch: dict) -> dict:
        return self._call(batch)


class ScoreActor:
    """One ERM classifier per actor (sent as its checkpoint bytes, loaded with weights_only)."""

    def __init__(self, checkpoint: bytes, arch: str, num_classes: int, cpus: float = 1.0, device: str = "cpu",
                 ig_dtype: str = "float32"):
        from ..project.device import ig_half, resolve_device
        from ..classifiers.models import load_classifier

        _threads(cpus)
        dev = resolve_device(device)
        self.half = ig_half(ig_dtype, dev)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "erm.pt"
            path.write_bytes(checkpoint)
            self.model, _a, _n = load_classifier(path, arch, num_classes, device=dev, what="scoring (ray worker)")
        self._call = _errors_as_results(self._score)

    def _score(self, job: dict) -> list:
        from .work import score_batch

        return score_batch(self.model, job["items"], job["image_size"], job["n_steps"], job["internal_batch_size"],
                           self.half)

    def __call__(self, batch: dict) -> dict:
        return self._call(batch)


def inpaint_on_ray(engine: EngineConfig, model: str, device: str, dtype: str, tokens: dict[str, Path],
                   batches: list[list[dict]], cfg, cancel: Optional[CancelToken] = None
                   ) -> Iterable[tuple[int, list, float, str]]:
    """(batch index, images, seconds per image, the workers' model sha) per batch, as they finish."""
    kw = {"model": model, "device": worker_device(engine, device), "dtype": dtype,
          "tokens": {t: Path(p).read_bytes() for t, p in tokens.items()}, "cpus": engine.cpus_per_worker}
    payloads = [pickle.dumps({"items": b, "cfg": cfg}) for b in batches]
    for i, res in run_on_ray(engine, InpaintActor, kw, payloads, cancel, "generation"):
        yield i, res["images"], res["seconds"] / max(1, len(batches[i])), res["model_sha"]


def score_on_ray(engine: EngineConfig, checkpoint: Path, arch: str, num_classes: int, batches: list[list[dict]],
                 image_size: int, n_steps: int, internal_batch_size: Optional[int],
                 cancel: Optional[CancelToken] = None, device: str = "auto",
                 ig_dtype: str = "float32") -> Iterable[tuple[int, list]]:
    kw = {"checkpoint": Path(checkpoint).read_bytes(), "arch": arch, "num_classes": num_classes,
          "cpus": engine.cpus_per_worker, "device": worker_device(engine, device), "ig_dtype": ig_dtype}
    payloads = [pickle.dumps({"items": b, "image_size": image_size, "n_steps": n_steps,
                              "internal_batch_size": internal_batch_size}) for b in batches]
    yield from run_on_ray(engine, ScoreActor, kw, payloads, cancel, "scoring")
