"""Classifiers: build torchvision ResNets, load ImageNet weights or user checkpoints, predict.

A classifier is any ``torch.nn.Module`` mapping a normalised NCHW float batch to logits. The
builders live in a name → function registry (``ARCHITECTURES``). Checkpoints the project writes
are ``{"arch", "num_classes", "image_size", "state_dict"}`` dicts; user checkpoints may also be a
bare ``state_dict`` (optionally under ``"state_dict"`` or ``"model"``, optionally with DataParallel's
``module.`` prefix). Every load uses ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..project.errors import ModelError, WeightsUnavailableError


@dataclass(frozen=True)
class Architecture:
    builder: str  # torchvision.models function name, or "narrow" (``narrow_resnet18``)
    weights: Optional[str]  # torchvision weights enum name, for --pretrained; None: no ImageNet weights exist
    feature_dim: int  # width of the penultimate layer (input of ``fc``)
    width: int = 64  # channels of the first stage (narrow ResNets only)


ARCHITECTURES = {
    "resnet18": Architecture("resnet18", "ResNet18_Weights", 512),
    "resnet34": Architecture("resnet34", "ResNet34_Weights", 512),
    "resnet50": Architecture("resnet50", "ResNet50_Weights", 2048),
    # ResNet-18 at half width (stages of 32/64/128/256 channels): a quarter of the compute, for small
    # images trained from scratch (the offline demo's classifier). No ImageNet weights exist for it.
    "resnet18_w32": Architecture("narrow", None, 256, width=32),
}


def narrow_resnet18(width: int, num_classes: int = 1000) -> "torch.nn.Module":
    """torchvision's ResNet-18 (same layers, names and stride pattern) with ``width`` channels in its
    first stage instead of 64, doubling per stage; loads, trains and explains like ``resnet18``."""
    import torch.nn as nn
    from torchvision.models.resnet import BasicBlock, ResNet

    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.inplanes = width
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.layer1 = model._make_layer(BasicBlock, width, 2)
    model.layer2 = model._make_layer(BasicBlock, width * 2, 2, stride=2)
    model.layer3 = model._make_layer(BasicBlock, width * 4, 2, stride=2)
    model.layer4 = model._make_layer(BasicBlock, width * 8, 2, stride=2)
    model.fc = nn.Linear(width * 8, num_classes)
    for m in model.modules():  # the initialisation ResNet.__init__ gives its own layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return model


def _arch(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def imagenet_weights_file(arch: str) -> tuple[str, Path]:
    """(download URL, expected path in the torch hub cache) of an architecture's ImageNet weights."""
    import torch
    import torchvision.models as tvm

    spec = _arch(arch)
    if spec.weights is None:
        raise WeightsUnavailableError(f"{arch} has no ImageNet weights: train it from scratch (without --pretrained)")
    weights = getattr(tvm, spec.weights).IMAGENET1K_V1
    return weights.url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_imagenet_state_dict(arch: str, weights_path: Optional[str] = None) -> dict:
    """ImageNet weights of ``arch``: from ``weights_path``, the torch hub cache, or a download."""
    import torch

    url, cached = imagenet_weights_file(arch)
    path = Path(weights_path) if weights_path else cached
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    if weights_path:
        raise WeightsUnavailableError(f"ImageNet weights file {weights_path} (given for {arch}) does not exist")
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception as e:  # URLError, socket errors, HTTP errors: all mean "not available here"
        raise WeightsUnavailableError(
            f"the ImageNet weights of {arch} ({os.path.basename(url)}) are not on this machine and could not be "
            f"downloaded from {url} ({type(e).__name__}: {e}). Provide them by copying the file to {cached} "
            f"(the torch hub cache; TORCH_HOME moves it), or pass its path with --pretrained-weights PATH, "
            f"or train without --pretrained."
        ) from e


def build_classifier(arch: str, num_classes: int, pretrained: bool = False,
                     weights_path: Optional[str] = None) -> "torch.nn.Module":
    """A torchvision ResNet with a fresh ``num_classes``-way ``fc`` layer."""
    import torch
    import torchvision.models as tvm

    if num_classes < 2:
        raise ModelError(f"num_classes must be at least 2, got {num_classes}")
    spec = _arch(arch)
    model = narrow_resnet18(spec.width) if spec.builder == "narrow" else getattr(tvm, spec.builder)(weights=None)
    if pretrained:
        model.load_state_dict(load_imagenet_state_dict(arch, weights_path))
    model.fc = torch.nn.Linear(spec.feature_dim, num_classes)
    # channels-last weights make the convolutions pick the channels-last kernels (about 15% faster on
    # CPU for training and inference; also the fast layout for fp16 on CUDA). Inputs can stay NCHW.
    return model.to(memory_format=torch.channels_last)


def save_checkpoint(model, path: Path, *, arch: str, num_classes: int, image_size: int) -> None:
    """Write a project checkpoint atomically (temporary file, then rename)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"arch": arch, "num_classes": num_classes, "image_size": image_size,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, tmp)
    os.replace(tmp, path)


def load_classifier(path: str | os.PathLike, arch: Optional[str] = None, num_classes: Optional[int] = None,
                    device=None, what: str = "classifier"):
    """Load a checkpoint into a fresh model. Returns (model in eval mode, arch, num_classes).

    ``arch``/``num_classes`` are required for bare state_dicts and checked against project checkpoints.
    ``device`` (a name, ``auto``, or a ``torch.device``): where the model goes (``device.place``, named
    ``what``); None leaves it on the CPU, for callers that only read its weights.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise ModelError(f"checkpoint {path} is a folder; give the checkpoint file in it (a .pt or .pth file)")
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"checkpoint {path} cannot be read as a PyTorch state_dict (weights_only=True): {type(e).__name__}: {e}") from e
    if not isinstance(obj, dict):
        raise ModelError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict")
    saved_arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
    if saved_arch and arch and saved_arch != arch:
        raise ModelError(f"checkpoint {path} is a {saved_arch}, but {arch} was asked for")
    arch = arch or saved_arch
    if arch is None:
        raise ModelError(f"checkpoint {path} does not record its architecture; pass --arch ({', '.join(ARCHITECTURES)})")
    state = obj
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            state = obj[key]
            break
    odd = [k for k in state if not isinstance(k, str)]
    if odd:
        raise ModelError(f"checkpoint {path} has keys that are not parameter names (e.g. {odd[0]!r} of type "
                         f"{type(odd[0]).__name__}); it is not a state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items() if hasattr(v, "shape")}
    if "fc.weight" not in state:
        raise ModelError(f"checkpoint {path} does not look like a {arch}: it has no fc.weight "
                         f"(first keys: {', '.join(list(state)[:5]) or 'none'})")
    ckpt_classes = int(state["fc.weight"].shape[0])
    if num_classes is not None and ckpt_classes != num_classes:
        raise ModelError(f"checkpoint {path} has {ckpt_classes} output classes, but the project has {num_classes}")
    model = build_classifier(arch, ckpt_classes)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
                  if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        detail = "; ".join(
            f"{what}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''}"
            for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
            if items)
        raise ModelError(f"checkpoint {path} does not match architecture {arch}: {detail}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelError(f"checkpoint {path} holds NaN or infinite values in {len(bad)} tensor(s): "
                         f"{', '.join(bad[:5])}{' …' if len(bad) > 5 else ''}; it cannot be used")
    model.load_state_dict(state)
    model.eval()
    if device is not None:
        from ..project.device import place

        model = place(model, device, what=what)
    return model, arch, ckpt_classes


def predict(model, dataset, batch_size: int = 256, device=None,
            on_batch: Optional[Callable[[int], None]] = None):
    """Logits of every item of ``dataset`` (deterministic transform), as a float32 CPU tensor."""
    import torch

    device = device or next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            idx = range(start, min(start + batch_size, len(dataset)))
            x = torch.stack([dataset[i][0] for i in idx]).to(device)
            out.append(model(x).float().cpu())
            if on_batch:
                on_batch(idx.stop)
    return torch.cat(out) if out else torch.empty(0, 0)


def features(model, dataset, batch_size: int = 256) -> "np.ndarray":
    """Penultimate-layer features (the input of ``model.fc``)."""
    import torch

    from ..project.device import module_device

    dev = module_device(model)
    feats = []
    hook = model.fc.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach().float().cpu()))
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                xs = torch.stack([dataset[k][0] for k in range(start, min(len(dataset), start + batch_size))])
                model(xs.to(dev))
    finally:
        hook.remove()
    return torch.cat(feats).numpy()
