"""The micro model's weights on disk and in training: the diffusers folder it is saved as (float16 weights, the window
it repaints), a VAE borrowed from another folder, and the running average of weights that a model is sampled from.

``WeightAverage`` is the exponential moving average of modules' parameters that published diffusion models are
sampled from (DDPM, latent diffusion, Stable Diffusion), with the warm-up of diffusers' ``EMAModel``: at update n the
decay is min(decay, (1 + n) / (10 + n)), so the first updates follow the weights closely.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..method.inpainting import INPAINT_FILE
from ..project.errors import ConfigError


class WeightAverage:
    """An exponential moving average of the parameters of named modules (``{"unet": unet, ...}``)."""

    def __init__(self, modules: dict, decay: float, state: dict | None = None) -> None:
        if not 0 < decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {decay}")
        self.modules, self.decay, self.updates = modules, decay, 0
        self.shadow = {name: {k: p.detach().clone() for k, p in m.named_parameters()} for name, m in modules.items()}
        if state is not None:
            self.updates = int(state["updates"])
            for name in modules:
                missing = self.shadow[name].keys() - state[name].keys()
                if missing:
                    raise ConfigError(f"the checkpoint's weight average has no {name} parameter {sorted(missing)[0]}")
                for k, t in self.shadow[name].items():
                    t.copy_(state[name][k])

    def update(self) -> float:
        """One step of the average towards the modules' current parameters; returns the decay used."""
        import torch

        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for name, m in self.modules.items():
                own = list(m.named_parameters())
                torch._foreach_lerp_([self.shadow[name][k] for k, _ in own], [p.detach() for _, p in own], 1 - d)
        return d

    def state_dict(self) -> dict:
        import torch

        return {"updates": torch.tensor(self.updates), **{name: dict(sd) for name, sd in self.shadow.items()}}

    def _load(self, weights: dict) -> None:
        import torch

        with torch.no_grad():
            for name, m in self.modules.items():
                for k, p in m.named_parameters():
                    p.copy_(weights[name][k])

    def copy_to_modules(self) -> None:
        """The modules take the averaged parameters (their own are lost)."""
        self._load(self.shadow)

    @contextmanager
    def applied(self):
        """The modules hold the averaged parameters inside the block and their own again after it."""
        own = {name: {k: p.detach().clone() for k, p in m.named_parameters()} for name, m in self.modules.items()}
        self._load(self.shadow)
        try:
            yield
        finally:
            self._load(own)


def halve_weights(folder: str | os.PathLike) -> int:
    """Store every float32 tensor of a diffusers folder's safetensors files as float16 (half the size;
    ``from_pretrained(..., dtype=torch.float32)`` loads them back as float32). Returns bytes saved."""
    import torch
    from safetensors.torch import load_file, save_file

    saved = 0
    for f in sorted(Path(folder).rglob("*.safetensors")):
        if "checkpoints" in f.parts:
            continue
        before = f.stat().st_size
        tensors = load_file(str(f))
        half = {k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in tensors.items()}
        tmp = f.with_name(f.name + ".tmp")
        save_file(half, str(tmp), metadata={"format": "pt"})
        tmp.replace(f)
        saved += before - f.stat().st_size
    return saved


def save_folder(out: Path, cfg, parts: dict) -> None:
    """The components as a diffusers inpainting folder (float16 weights), with the model's window (``inpaint.json``)
    read from ``cfg``, the run's ``MicroTrainConfig`` (not imported here: that module imports this one)."""
    from diffusers import StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline(vae=parts["vae"].cpu().eval(), unet=parts["unet"].cpu().eval(),
                                          text_encoder=parts["text_encoder"].cpu().eval(), tokenizer=parts["tokenizer"],
                                          scheduler=parts["scheduler"], safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(out)
    halve_weights(out)
    if cfg.crop_scale:
        (Path(out) / INPAINT_FILE).write_text(json.dumps({"crop_scale": cfg.repaint_scale or cfg.crop_scale}, indent=2))


def vae_sha256(folder: Path) -> str:
    """sha256 over the bytes of a diffusers folder's VAE weight files (what a training record quotes of a borrowed VAE)."""
    import hashlib
    digest = hashlib.sha256()
    for f in sorted((Path(folder) / "vae").glob("*.safetensors")):
        digest.update(f.read_bytes())
    return digest.hexdigest()


def unet_sha256(folder: Path) -> str:
    """sha256 over the bytes of a diffusers folder's UNet and text encoder weight files (what a training record quotes
    of a borrowed UNet)."""
    import hashlib
    digest = hashlib.sha256()
    for f in sorted(list((Path(folder) / "unet").glob("*.safetensors"))
                    + list((Path(folder) / "text_encoder").glob("*.safetensors"))):
        digest.update(f.read_bytes())
    return digest.hexdigest()


def _load_same_sizes(ours, cls, path: Path, refusal: str) -> None:
    """The weights of the model folder ``path`` (a ``cls``) loaded into ``ours``, the recipe's own part, when every
    tensor has the same name and shape, else a ConfigError ``refusal``. Read on the CPU: the training places its parts
    on the chosen device after loading them."""
    import torch

    theirs = cls.from_pretrained(path, torch_dtype=torch.float32).state_dict()
    mine = ours.state_dict()
    if theirs.keys() != mine.keys() or any(theirs[k].shape != mine[k].shape for k in mine):
        raise ConfigError(refusal)
    ours.load_state_dict(theirs)


def load_vae_from(vae, folder: Path) -> dict:
    """Load the VAE of the diffusers folder ``folder`` into ``vae`` (same sizes, else a ConfigError naming both);
    returns what the training record says of it: the folder, its weights' sha256 and its own training command."""
    from diffusers import AutoencoderKL

    if not (folder / "vae").is_dir():
        raise ConfigError(f"--vae-from {folder}: no vae/ folder there (a diffusers model folder is expected)")
    _load_same_sizes(vae, AutoencoderKL, folder / "vae", f"--vae-from {folder}: its VAE has other sizes than this "
                     "recipe's (vae_channels, latent_channels); use a model trained with the same VAE recipe")
    record = folder / "training.json"
    recipe = None
    if record.is_file():
        cfg = json.loads(record.read_text()).get("config", {})
        recipe = {k: cfg.get(k) for k in ("vae_steps", "vae_batch_size", "vae_lr", "kl_weight", "seed", "corpus",
                                          "crop_scale")}
    return {"folder": str(folder), "vae_sha256": vae_sha256(folder), "vae_recipe": recipe}


def weights_diff(run_dir: str | os.PathLike, reference: str | os.PathLike) -> dict:
    """How a training run's weights compare with another model folder's, per part (UNet, text encoder): whether the
    run's last weights (its checkpoint, stored in float16 as a folder stores them) are the reference's bit for bit,
    and the largest absolute difference between the last weights, the weights its folder saved (the average, for a run
    with ``ema_decay``) and the reference's. Measures what a change that keeps the training itself (the average) moved."""
    import torch
    from safetensors.torch import load_file

    run_dir, reference = Path(run_dir), Path(reference)
    state_file = run_dir / "checkpoints" / "state.pt"
    if not state_file.is_file():
        raise ConfigError(f"--run {run_dir}: no checkpoint there ({state_file}); give a train-micro-inpainter run folder")
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    out = {"run": str(run_dir), "reference": str(reference), "parts": {}}
    for part, key, file in (("unet", "unet", "diffusion_pytorch_model.safetensors"),
                            ("text_encoder", "text_encoder", "model.safetensors")):
        files = {name: folder / part / file for name, folder in (("saved", run_dir), ("reference", reference))}
        for name, f in files.items():
            if not f.is_file():
                raise ConfigError(f"{f} not found: the {name} folder has no {part} weights")
        saved, ref = load_file(str(files["saved"])), load_file(str(files["reference"]))
        last = {k: v.half() for k, v in state[key].items() if k in ref}
        if last.keys() != ref.keys() or saved.keys() != ref.keys():
            raise ConfigError(f"{run_dir} and {reference}: their {part} weights have other names; not the same recipe")

        def largest(a: dict, b: dict) -> float:
            return max(float((a[k].float() - b[k].float()).abs().max()) for k in ref)

        out["parts"][part] = {"last_equals_reference": all(torch.equal(last[k], ref[k]) for k in ref),
                              "last_vs_reference": largest(last, ref), "saved_vs_last": largest(saved, last),
                              "saved_vs_reference": largest(saved, ref), "tensors": len(ref)}
    return out


def load_unet_from(unet, text_encoder, folder: Path) -> dict:
    """Load the UNet and text encoder of the diffusers folder ``folder`` into ``unet`` and ``text_encoder`` (same sizes,
    else a ConfigError naming the folder); returns what the training record says of them: the folder, the sha256 of
    their weight files, the latent scale its VAE was given (the UNet's latents) and its own training command."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    for part in ("unet", "text_encoder", "vae"):
        if not (folder / part).is_dir():
            raise ConfigError(f"--unet-from {folder}: no {part}/ folder there (a diffusers model folder is expected)")
    for ours, cls, part in ((unet, UNet2DConditionModel, "unet"), (text_encoder, CLIPTextModel, "text_encoder")):
        _load_same_sizes(ours, cls, folder / part, f"--unet-from {folder}: its {part} has other sizes than this "
                         "recipe's; use a model trained with the same recipe")
    scale = json.loads((folder / "vae" / "config.json").read_text()).get("scaling_factor")
    record = folder / "training.json"
    trained = json.loads(record.read_text()) if record.is_file() else {}
    return {"folder": str(folder), "weights_sha256": unet_sha256(folder), "latent_scale": scale,
            "config": trained.get("config"), "seconds_total": trained.get("seconds_total")}
