"""``ddb bench fullscale``: the product's path at its real size, run end to end, and what each stage costs.

Random-weight models of the real architectures, built from their published configuration values
(nothing is downloaded), saved in the formats the loaders read:

- SD2-inpainting (``stabilityai/stable-diffusion-2-inpainting``): the UNet of its ``unet/config.json``
  (9 input channels, blocks 320/640/1280/1280, attention head dims 5/10/20/20, cross-attention 1024,
  linear projections; about 866M parameters), the VAE of ``vae/config.json`` (blocks 128/256/512/512),
  the OpenCLIP ViT-H/14 text encoder of ``text_encoder/config.json`` (23 layers, width 1024, 16 heads),
  and the PNDM scheduler of ``scheduler/scheduler_config.json``. Only the tokenizer's vocabulary is
  the project's own word list (its files cannot be had offline); the embedding table keeps CLIP's
  49,408 rows.
- GroundingDINO base (``IDEA-Research/grounding-dino-base``): Swin-B backbone (embed 128, depths
  2/2/18/2, heads 4/8/16/32, window 12, 384 px), BERT-base text encoder, 900 queries, 6 + 6 layers,
  the default image processor (shorter side 800, longer ≤ 1333).
- SAM ViT-H: ``segment_anything.sam_model_registry["vit_h"]`` (the package's own builder), saved as a
  checkpoint named like the real one.
- The ERM classifier: torchvision ResNet-50 at 224 px, two classes.

A small dataset in the Waterbirds layout with Waterbirds-size (500×375) and CelebA-size (178×218)
JPEGs goes through the same commands a user types (``ddb_core.cli.main``), each stage in its own
process so that its peak memory is its own: ``erm load``, ``select``, ``invert`` (one step per class),
``mask`` (langsam), ``generate`` (2 denoising steps at 512 px), ``score`` (50 IG steps),
``decide`` (every candidate accepted, so that retraining has them), ``retrain`` (one step).

Measured per stage: wall seconds, the seconds spent loading models (timed around the loaders), peak
resident memory of the stage's process (peak allocated CUDA memory on a GPU), and the UNet's own
seconds per denoising step (a forward hook). From them: seconds per candidate, the diffusion cost at
50 steps (the rest of generation plus 50 UNet steps), the overhead ratio (masking + scoring +
storage) / diffusion at 50 steps, and bytes on disk per candidate (image, mask, IG map, row).
Detection thresholds are 0 for the random GroundingDINO (its scores mean nothing; a real model uses
the defaults). On CUDA the commands run in float16 (the device setting ``auto``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .plan import per_candidate_flops, plan_120k, plan_markdown
from .real_sizes import CELEBA_SIZE, WATERBIRDS_SIZE, picture

WORDS = ("a", "photo", "of", "the", "bird", "landbird", "waterbird", "on", "land", "water", "in", "background")
MODEL_STAMP = "fullscale-models-v1"


# ---------------------------------------------------------------------------------------------
# 1. The models, from their published configuration values.


def sd2_inpainting_components(seed: int = 0) -> dict:
    """Random-weight components of SD2-inpainting at their real sizes."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..demo.micro_sd import build_clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(WORDS)
    tokenizer.model_max_length = 77
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=9, out_channels=4, layers_per_block=2, act_fn="silu",
        block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        use_linear_projection=True, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, center_input_sample=False, mid_block_scale_factor=1)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, act_fn="silu", norm_num_groups=32,
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512, scaling_factor=0.18215)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
        max_position_embeddings=77, hidden_act="gelu", projection_dim=512, layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, prediction_type="epsilon")
    return {"vae": vae, "unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def grounding_dino_base(folder: Path, seed: int = 0) -> Path:
    """GroundingDINO base (Swin-B, BERT-base) with random weights and its processor, saved in ``folder``."""
    import torch
    from transformers import BertTokenizer, GroundingDinoForObjectDetection, GroundingDinoImageProcessor, GroundingDinoProcessor

    torch.manual_seed(seed)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + list(WORDS)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                                       tokenizer=BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}))
    model = GroundingDinoForObjectDetection(_dino_config())
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _dino_config():
    """GroundingDINO base: Swin-B backbone, BERT-base text encoder (12 layers, width 768, 30,522 rows)."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    return GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12,
                                   image_size=384, out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig())


def grounding_dino_config(folder: Path) -> Path:
    """GroundingDINO base's configuration alone (what ``model_flops`` needs), saved in ``folder``."""
    _dino_config().save_pretrained(folder)
    return folder


def build_models(folder: Path, on_progress=None) -> dict[str, object]:
    """Build and save every model once (kept in ``folder``; a later run reuses them). Returns paths and sizes."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline
    from segment_anything import sam_model_registry

    from ..classifiers.models import build_classifier, save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"sd": folder / "sd2-inpainting", "dino": folder / "grounding-dino-base",
             "sam": folder / "sam_vit_h_random.pth", "erm": folder / "resnet50-224.pt"}
    stamp = folder / "built.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("stamp") == MODEL_STAMP:
        return json.loads(stamp.read_text())
    t0 = time.monotonic()
    parts = sd2_inpainting_components()
    counts = {k: sum(p.numel() for p in parts[k].parameters()) for k in ("unet", "vae", "text_encoder")}
    pipe = StableDiffusionInpaintPipeline(**parts, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(paths["sd"])  # float16 on disk, as the published weights; loaded as asked
    del pipe, parts
    grounding_dino_base(paths["dino"])
    from transformers import GroundingDinoForObjectDetection

    # parameter counts only (CPU, no stage runs them here): the stages load these models on the chosen device
    counts["grounding_dino"] = sum(p.numel() for p in GroundingDinoForObjectDetection.from_pretrained(paths["dino"]).parameters())
    torch.manual_seed(0)
    sam = sam_model_registry["vit_h"]()
    counts["sam"] = sum(p.numel() for p in sam.parameters())
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sam.state_dict().items()}, paths["sam"])
    del sam
    torch.manual_seed(0)
    erm = build_classifier("resnet50", 2)
    counts["erm"] = sum(p.numel() for p in erm.parameters())
    save_checkpoint(erm, paths["erm"], arch="resnet50", num_classes=2, image_size=224)
    info = {"stamp": MODEL_STAMP, "paths": {k: str(v) for k, v in paths.items()}, "parameters": counts,
            "build_seconds": round(time.monotonic() - t0, 1)}
    stamp.write_text(json.dumps(info, indent=2))
    return info


def _count(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as m:
        fn()
    return int(m.get_total_flops())


def model_flops(dino_folder: Path, image_hw: tuple[int, int] = (375, 500), resolution: int = 512) -> dict[str, int]:
    """Floating-point operations of each model call one candidate needs, counted by torch's
    ``FlopCounterMode`` (matrix products and convolutions) on the real architectures: on the meta
    device (no memory, no time) where the model allows, GroundingDINO on the CPU. Everything at the size the
    pipeline runs an image of ``image_hw`` (h, w): the UNet and the VAE on its canvas (longer side
    ``resolution``, aspect ratio kept, padded to multiples of 8: ``ModelCanvas``), GroundingDINO at its processor's
    size for that image (shorter side 800, longer at most 1333), SAM at 1024, the ResNet-50 at 224.
    Device-independent: with a GPU's sustained throughput they give its time."""
    import torch
    import torchvision
    from segment_anything import sam_model_registry
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    from ..method.inpainting import ModelCanvas

    ch, cw = ModelCanvas.fit(image_hw, resolution).canvas_hw
    out = {"canvas_hw": [ch, cw], "image_hw": list(image_hw)}
    with torch.device("meta"):
        parts = sd2_inpainting_components()
        unet, vae, te = parts["unet"], parts["vae"], parts["text_encoder"]
        out["unet_step_cfg"] = _count(lambda: unet(torch.randn(2, 9, ch // 8, cw // 8), torch.tensor([500, 500]),
                                                   encoder_hidden_states=torch.randn(2, 77, 1024)))
        out["vae_encode"] = _count(lambda: vae.encode(torch.randn(1, 3, ch, cw)))
        out["vae_decode"] = _count(lambda: vae.decode(torch.randn(1, 4, ch // 8, cw // 8)))
        out["text_encoder"] = _count(lambda: te(torch.zeros(2, 77, dtype=torch.long)))
        del parts, unet, vae, te
        sam = sam_model_registry["vit_h"]()
        out["sam_image_encoder"] = _count(lambda: sam.image_encoder(torch.randn(1, 3, 1024, 1024)))
        del sam
        r50 = torchvision.models.resnet50(num_classes=2)
        x = torch.randn(1, 3, 224, 224, requires_grad=True)
        out["resnet50_forward"] = _count(lambda: r50(x))
        out["resnet50_forward_backward"] = _count(lambda: r50(x)[:, 1].sum().backward())
    # GroundingDINO at the processor's size for this image (shorter side 800, longer at most 1333)
    h, w = image_hw
    f = min(800 / min(h, w), 1333 / max(h, w))
    ph, pw = round(h * f), round(w * f)
    out["dino_input_hw"] = [ph, pw]
    torch.manual_seed(0)  # FLOPs are device-independent: counted on the CPU, the model is not used for a stage
    dino = GroundingDinoForObjectDetection(GroundingDinoConfig.from_pretrained(dino_folder)).eval()
    with torch.no_grad():
        out["grounding_dino"] = _count(lambda: dino(pixel_values=torch.randn(1, 3, ph, pw),
                                                    input_ids=torch.tensor([[2, 7, 8, 9, 3]]),
                                                    attention_mask=torch.ones(1, 5, dtype=torch.long)))
    return out


# ---------------------------------------------------------------------------------------------
# 2. A dataset of real sizes, in the Waterbirds layout.


def make_dataset(folder: Path, seed: int = 0) -> Path:
    """Train: per class one Waterbirds-size and one CelebA-size image; val and test: two of each class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["img_filename,y,place,split"]
    k = 0
    for split, sizes in ((0, (WATERBIRDS_SIZE, CELEBA_SIZE)), (1, (WATERBIRDS_SIZE, CELEBA_SIZE)),
                         (2, (WATERBIRDS_SIZE, CELEBA_SIZE))):
        for y in (0, 1):
            for place, (w, h) in enumerate(sizes):
                name = f"img/{split}_{y}_{k}_{w}x{h}.jpg"
                (folder / name).parent.mkdir(exist_ok=True)
                Image.fromarray(picture(rng, w, h, y)).save(folder / name, quality=92)
                rows.append(f"{name},{y},{place},{split}")
                k += 1
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


# ---------------------------------------------------------------------------------------------
# 3. One stage in its own process (``stage_probe``): the CLI command, timed, with its peak memory.


def run_stage(name: str, argv: list[str], workdir: Path, log=print) -> dict:
    out = workdir / f"stage-{name}.json"
    out.unlink(missing_ok=True)
    log(f"[fullscale] {name}: ddb {' '.join(argv)}")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ddb_core.bench.stage_probe", str(out), "--", *argv],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"stage {name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    res = json.loads(out.read_text())
    res["process_seconds"] = time.monotonic() - t0
    res["stdout"] = proc.stdout[-2000:]
    log(f"[fullscale] {name}: {res['seconds']:.1f} s (loading {res['load_seconds']:.1f} s), "
        f"peak {res['peak_rss_bytes'] / 2**30:.2f} GiB")
    return res


# ---------------------------------------------------------------------------------------------
# 4. The run, and what it measured.


def _storage(project_root: Path) -> dict:
    """Bytes on disk per candidate (image, mask, IG map, its database row), by source size, and the
    seconds to write them again (the storage share of the overhead)."""
    from PIL import Image

    from ..pipeline.igmaps import load_ig, save_ig
    from ..data.imaging import load_mask, load_rgb
    from ..project.store import Project

    p = Project.open(project_root)
    cols = [r[1] for r in p.db.execute("pragma table_info(candidates)")]
    row_len = " + ".join(f"coalesce(length(c.{c}), 0)" for c in cols)
    rows = list(p.db.query(f"select c.id, c.path, c.ig_path, m.path as mask_path, s.path as source_path, ({row_len}) "
                           f"as row_bytes from candidates c join masks m on m.id = c.mask_id join samples s on "
                           f"s.id = c.source_id"))
    image_side = p.active_erm()["image_size"]
    by_size: dict[str, list[dict]] = {}
    write_seconds = []
    tmp = project_root / "storage-check"
    tmp.mkdir(exist_ok=True)
    for r in rows:
        src = load_rgb(p.dataset_path(r["source_path"]))
        key = f"{src.shape[1]}x{src.shape[0]}"
        files = {"image": p.project_path(r["path"]), "mask": p.project_path(r["mask_path"]),
                 "ig_map": p.project_path(r["ig_path"])}
        entry = {k: f.stat().st_size for k, f in files.items()}
        entry["row"] = int(r["row_bytes"])
        entry["total"] = sum(entry.values())
        by_size.setdefault(key, []).append(entry)
        img, mask, ig = load_rgb(files["image"]), load_mask(files["mask"]), load_ig(files["ig_map"])
        t = time.monotonic()
        Image.fromarray(img).save(tmp / "x.png")
        Image.fromarray(mask).save(tmp / "m.png")
        save_ig(tmp / "ig.npz", ig, image_side)
        write_seconds.append(time.monotonic() - t)
    p.close()
    summary = {size: {k: int(np.median([e[k] for e in es])) for k in es[0]} | {"candidates": len(es)}
               for size, es in by_size.items()}
    return {"by_source_size": summary, "write_seconds_per_candidate": float(np.median(write_seconds)) if write_seconds else 0.0}


def bench_fullscale(workdir: str | os.PathLike = "projects/bench/fullscale", doc: Optional[Path] = None,
                    json_path: Optional[Path] = None, log=print, resume: bool = False) -> dict:
    """Run every stage (``resume``: keep the stages a killed run finished, run the rest), then report."""
    import shutil

    import torch

    workdir = Path(workdir)
    t_all = time.monotonic()
    models = build_models(workdir / "models")
    paths = models["paths"]
    data = make_dataset(workdir / "dataset")
    proj = workdir / "project"
    run_file = workdir / "run.json"
    stages: dict[str, dict] = json.loads(run_file.read_text()) if resume and run_file.exists() else {}
    resumed = set(stages)  # their time is counted from their records, not from this process's clock
    if not stages and proj.exists():
        shutil.rmtree(proj)
    P = ["-p", str(proj)]

    def stage(name: str, argv: list[str]) -> None:
        if name not in stages:
            stages[name] = run_stage(name, argv, workdir, log)
            run_file.write_text(json.dumps(stages, indent=1))

    stage("init", ["init", *P, "--format", "waterbirds", "--source", str(data), "--class-names", "landbird",
                   "waterbird", "--attr-names", "land", "water", "--object-prompt", "bird"])
    stage("erm load", ["erm", "load", *P, "--checkpoint", paths["erm"], "--image-size", "224"])
    stage("select", ["select", *P, "--k", "2", "--ti-size", "2"])
    stage("invert", ["invert", *P, "--model", paths["sd"], "--steps", "1", "--batch-size", "1"])
    stage("mask", ["mask", *P, "--masker", "langsam", "--dino", paths["dino"], "--sam", paths["sam"],
                   "--box-threshold", "0", "--text-threshold", "0"])
    stage("generate", ["generate", *P, "--model", paths["sd"], "--steps", "2", "--batch-size", "1"])
    stage("score", ["score", *P, "--n-steps", "50"])
    from ..project.store import Project

    p = Project.open(proj)
    ids = [r[0] for r in p.db.execute("select id from candidates order by id")]
    n_sources = p.db.execute("select count(*) from selections where purpose = 'source'").fetchone()[0]
    n_masks_ok = p.db.execute("select count(*) from masks where status = 'ok'").fetchone()[0]
    n_train = p.sample_count("train")
    p.close()
    if not ids:
        raise RuntimeError("the full-size run made no candidate (every mask came back empty)")
    stage("decide", ["decide", *P, "--accept", *map(str, ids)])
    stage("retrain", ["retrain", *P, "--epochs", "1", "--batch-size", str(n_train + len(ids)), "--evals-per-epoch", "1",
                      "--no-augment"])
    storage = _storage(proj)
    log("[fullscale] counting the models' floating-point operations")
    flops = model_flops(Path(paths["dino"]))
    flops_celeba = model_flops(Path(paths["dino"]), (CELEBA_SIZE[1], CELEBA_SIZE[0]))
    n = len(ids)
    per = lambda s: (stages[s]["seconds"] - stages[s]["load_seconds"]) / n
    gen = stages["generate"]
    unet_step = gen["unet_seconds"] / max(1, gen["unet_calls"])  # one UNet call per step (CFG in one batch) per batch
    steps = 2
    gen_rest = per("generate") - steps * unet_step  # VAE, text encoder, paste-back, PNG, per candidate
    diffusion50 = gen_rest + 50 * unet_step
    overhead = per("mask") + per("score") + storage["write_seconds_per_candidate"]
    cuda = torch.cuda.is_available()
    res = {
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "dtype": "float16" if cuda else "float32", "torch_threads": torch.get_num_threads(),
        "parameters": models["parameters"], "model_build_seconds": models.get("build_seconds"),
        "images": {"waterbirds": list(WATERBIRDS_SIZE), "celeba": list(CELEBA_SIZE)},
        "candidates": n, "sources": n_sources, "masks_ok": n_masks_ok, "inversion_steps": 2, "denoising_steps": steps,
        "ig_steps": 50,
        "stages": {k: {kk: v[kk] for kk in ("seconds", "load_seconds", "peak_rss_bytes", "cuda_peak_bytes", "unet_seconds",
                                            "unet_calls")} for k, v in stages.items()},
        "per_candidate_seconds": {"mask": per("mask"), "generate_2_steps": per("generate"), "score_50_ig_steps": per("score"),
                                  "storage": storage["write_seconds_per_candidate"]},
        "inversion_seconds_per_step": (stages["invert"]["seconds"] - stages["invert"]["load_seconds"]) / 2,
        "retrain_seconds_one_step": stages["retrain"]["seconds"] - stages["retrain"]["load_seconds"],
        "unet_seconds_per_step": unet_step, "diffusion_50_steps_seconds_per_candidate": diffusion50,
        "overhead_ratio_50_steps": overhead / diffusion50,
        "storage": storage,
        "flops": flops, "flops_per_candidate_50_steps": per_candidate_flops(flops),
        "cpu_sustained_tflops_unet": flops["unet_step_cfg"] / unet_step / 1e12 if unet_step else None,
        "total_seconds": (time.monotonic() - t_all) + sum(v["process_seconds"] for k, v in stages.items() if k in resumed),
        "resumed_stages": sorted(resumed),
        "command": "ddb bench fullscale",
    }
    res["flops_celeba"] = flops_celeba
    res["plan_120k"] = plan_120k(res, flops_celeba)
    from .docs import write_result, write_section

    write_result(res, doc, json_path, "fullscale", fullscale_markdown(res))
    if doc:
        write_section(Path(doc).parent.parent / "README.md", "plan-120k", plan_markdown(res) + "\n")
    return res


def replan(json_path: Path = Path("docs/bench/fullscale.json"), workdir: str | os.PathLike = "projects/bench/fullscale",
           readme: Optional[Path] = Path("README.md"), write: bool = True) -> dict:
    """The 120,000-candidate plan again from a stored full-size run (its measured seconds and bytes), with the FLOPs
    counted now at CelebA's size; with ``write``, into the stored result and the README. The stages are not run."""
    import json as _json

    res = _json.loads(Path(json_path).read_text())
    dino = Path(workdir) / "models" / "dino-config"
    if not (dino / "config.json").is_file():
        grounding_dino_config(dino)
    res["flops_celeba"] = model_flops(dino, (CELEBA_SIZE[1], CELEBA_SIZE[0]))
    res["plan_120k"] = plan_120k(res, res["flops_celeba"])
    res["plan_command"] = "ddb bench fullscale --replan"
    if write:
        Path(json_path).write_text(_json.dumps(res, indent=2, default=str))
    if write and readme:
        from .docs import write_section

        write_section(Path(readme), "plan-120k", plan_markdown(res) + "\n")
    return res


def _gib(b) -> str:
    return "—" if b is None else f"{b / 2**30:.2f} GiB"


def fullscale_markdown(res: dict) -> str:
    pc = res["per_candidate_seconds"]
    par = res["parameters"]
    lines = [
        "## The full-size path: SD2-inpainting at 512, ResNet-50 at 224, GroundingDINO + SAM ViT-H",
        "",
        f"`{res['command']}` — random-weight models of the real architectures (UNet {par['unet'] / 1e6:.0f}M, VAE "
        f"{par['vae'] / 1e6:.0f}M, OpenCLIP-H text encoder {par['text_encoder'] / 1e6:.0f}M, GroundingDINO base "
        f"{par['grounding_dino'] / 1e6:.0f}M, SAM ViT-H {par['sam'] / 1e6:.0f}M, ResNet-50 {par['erm'] / 1e6:.1f}M "
        f"parameters), every stage through the command a user types, each in its own process. "
        f"Device: {res['device']}, {res['dtype']}. {res['candidates']} candidates from {res['sources']} source images "
        f"(Waterbirds-size {res['images']['waterbirds'][0]}×{res['images']['waterbirds'][1]} and CelebA-size "
        f"{res['images']['celeba'][0]}×{res['images']['celeba'][1]}), one run; per-candidate figures are the stage's "
        f"time without model loading, divided by the candidates. Whole run: {res['total_seconds'] / 60:.1f} min.",
        "",
        "| stage | seconds | of which loading models | peak memory |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k, s in res["stages"].items():
        mem = s["cuda_peak_bytes"] if s["cuda_peak_bytes"] is not None else s["peak_rss_bytes"]
        lines.append(f"| {k} | {s['seconds']:.1f} | {s['load_seconds']:.1f} | {_gib(mem)} |")
    mem_kind = "peak allocated CUDA memory" if res["stages"]["generate"]["cuda_peak_bytes"] is not None else \
        "peak resident memory of the stage's process"
    lines += [
        "",
        f"Memory: {mem_kind}.",
        "",
        "| per candidate | seconds |",
        "| --- | ---: |",
        f"| masking (GroundingDINO base + SAM ViT-H) | {pc['mask']:.2f} |",
        f"| generation, {res['denoising_steps']} denoising steps at 512 px | {pc['generate_2_steps']:.2f} |",
        f"| — of which one UNet step (classifier-free guidance in one batch) | {res['unet_seconds_per_step']:.2f} |",
        f"| generation extrapolated to 50 steps | {res['diffusion_50_steps_seconds_per_candidate']:.2f} |",
        f"| scoring (ψ and 50 IG steps, ResNet-50 at 224) | {pc['score_50_ig_steps']:.2f} |",
        f"| storage (image, mask, IG map written again) | {pc['storage']:.3f} |",
        f"| **all, at 50 denoising steps** | **{res['diffusion_50_steps_seconds_per_candidate'] + pc['mask'] + pc['score_50_ig_steps'] + pc['storage']:.2f}** |",
        "",
        f"Textual inversion: {res['inversion_seconds_per_step']:.2f} s per step (batch 1, 512 px). Retraining: one "
        f"step of the ResNet-50 with every sample in one batch, with its val and test evaluation: "
        f"{res['retrain_seconds_one_step']:.1f} s.",
        "",
        f"**Overhead ratio** (masking + scoring + storage) / diffusion at 50 steps: "
        f"**{res['overhead_ratio_50_steps']:.2f}**.",
        "",
        "Bytes on disk per candidate (medians), by source size:",
        "",
        "| source size | candidates | image (PNG) | mask (PNG) | IG map | row | total |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, s in res["storage"]["by_source_size"].items():
        lines.append(f"| {size} | {s['candidates']} | {s['image'] / 1e3:.1f} KB | {s['mask'] / 1e3:.1f} KB | "
                     f"{s['ig_map'] / 1e3:.1f} KB | {s['row'] / 1e3:.1f} KB | {s['total'] / 1e3:.1f} KB |")
    lines += ["", "The generated images are random-weight noise, which PNG compresses worse than photographs: the "
                  "image column is an upper bound. The IG map is the compact form of `ddb_core/pipeline/igmaps.py`.", ""]
    return "\n".join(lines)
