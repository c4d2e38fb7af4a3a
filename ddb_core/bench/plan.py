"""The plan for 120,000 candidates at CelebA's size (``ddb bench fullscale``, ``--replan``): the hours on 1, 4 and
16 GPUs from the stages' FLOPs per candidate and the GPU's assumed sustained rate, with masking on Ray or on one
GPU (``plan_hours``, the arithmetic); this machine's CPU extrapolated from the measured seconds; the disk from the
measured bytes of a candidate and its thumbnail.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .real_sizes import CELEBA_SIZE, WATERBIRDS_SIZE, picture


def per_candidate_flops(fl: dict, steps: int = 50, ig_steps: int = 50) -> dict[str, float]:
    """FLOPs per candidate by stage at ``steps`` denoising steps, as the pipeline runs: generation (the text encoder,
    one VAE encode — the 9-channel pipeline encodes the masked image once; the image itself is not encoded —,
    ``steps`` UNet calls with classifier-free guidance in one batch, one decode), masking (GroundingDINO + SAM's image
    encoder; its prompt decoder is negligible), scoring (two forwards for ψ, ``ig_steps`` forward+backward passes
    for IG)."""
    return {"generation": fl["text_encoder"] + fl["vae_encode"] + steps * fl["unet_step_cfg"] + fl["vae_decode"],
            "masking": fl["grounding_dino"] + fl["sam_image_encoder"],
            "scoring": 2 * fl["resnet50_forward"] + ig_steps * fl["resnet50_forward_backward"]}


STAGES = ("masking", "generation", "scoring")  # run one after another, each over every candidate


def plan_hours(seconds_per_candidate: dict[str, float], n: int, gpus: int, on_ray=STAGES) -> dict:
    """Hours for ``n`` candidates on ``gpus`` GPUs. The stages run one after another, each over every candidate
    (``ddb mask``, ``ddb generate``, ``ddb score``); a stage in ``on_ray`` is spread over the GPUs (one worker per GPU
    holding its own models, no loss between them), any other runs on one GPU. ``seconds_per_candidate``: one GPU's
    seconds per candidate by stage."""
    if gpus < 1 or n < 0:
        raise ValueError(f"gpus must be >= 1 and n >= 0, got gpus={gpus}, n={n}")
    by_stage = {k: n * sec / (gpus if k in on_ray else 1) / 3600 for k, sec in seconds_per_candidate.items()}
    return {"gpus": gpus, "by_stage": by_stage, "total": sum(by_stage.values())}


# The GPU in the plan, and what it is assumed to sustain (stated wherever the plan is shown):
GPU = "A100 (80 GB)"  # the paper's Table 9 GPU


GPU_PEAK_TFLOPS = 312.0  # dense float16 tensor-core peak


GPU_UTILISATION = 0.4  # assumed sustained share of the peak for these models in float16 (not measured here)


PAPER_CELEBA = {"candidates": 122_000, "hours": 5.0}  # Table 2 (120,000 + 2,000 generated) and Table 9 (one A100)


# CelebA's training split (Blond_Hair): the recipe's K per class comes from these sizes
CELEBA_TRAIN = {"not blond": 138_503, "blond": 24_267}


def thumbnail_bytes(size_wh: tuple[int, int] = CELEBA_SIZE, seed: int = 0) -> int:
    """Bytes of the gallery thumbnail (``thumbnails.py``: JPEG, longer side 96) of a generated picture of
    ``size_wh``, drawn as the full-size run's dataset draws them."""
    import io

    from PIL import Image

    from ..data.thumbnails import QUALITY, make_thumbnail

    img = picture(np.random.default_rng(seed), size_wh[0], size_wh[1], 0)
    buf = io.BytesIO()
    Image.fromarray(make_thumbnail(img)).save(buf, format="JPEG", quality=QUALITY)
    return len(buf.getvalue())


def plan_120k(res: dict, celeba_flops: Optional[dict] = None, n: int = 120_000) -> dict:
    """Time and disk for ``n`` CelebA candidates: on 1, 4 and 16 GPUs from the FLOPs counted at CelebA's size (its
    424×512 canvas, GroundingDINO at its processor's size) at an assumed sustained throughput, every stage on Ray
    (``plan_hours``); on this machine's CPU extrapolated from its measured seconds; disk from the measured bytes of a
    CelebA-size candidate and its thumbnail. K per class as ``ddb select --k-total n`` makes it on CelebA's sizes."""
    from ..method.selection import balanced_counts

    fl = celeba_flops or res["flops"]
    f = per_candidate_flops(fl)
    total_flops = sum(f.values())
    sustained = GPU_PEAK_TFLOPS * GPU_UTILISATION * 1e12
    gpu_s = {k: v / sustained for k, v in f.items()}
    pc = res["per_candidate_seconds"]
    cpu_s = res["diffusion_50_steps_seconds_per_candidate"] + pc["mask"] + pc["score_50_ig_steps"] + pc["storage"]
    sizes = res["storage"]["by_source_size"]
    celeba = sizes.get(f"{CELEBA_SIZE[0]}x{CELEBA_SIZE[1]}") or next(iter(sizes.values()))
    wb = sizes.get(f"{WATERBIRDS_SIZE[0]}x{WATERBIRDS_SIZE[1]}") or celeba
    thumb = thumbnail_bytes()
    paper_s = PAPER_CELEBA["hours"] * 3600 / PAPER_CELEBA["candidates"]
    k = balanced_counts(n, list(CELEBA_TRAIN.values()))
    return {
        "candidates": n, "k_per_class": dict(zip(CELEBA_TRAIN, k)), "celeba_train": CELEBA_TRAIN,
        "flops_at": {"canvas_hw": fl.get("canvas_hw"), "dino_input_hw": fl.get("dino_input_hw"),
                     "image_hw": fl.get("image_hw")},
        "flops_per_candidate": total_flops, "flops_by_stage": f,
        "gpu": GPU, "gpu_peak_tflops": GPU_PEAK_TFLOPS, "gpu_utilisation_assumed": GPU_UTILISATION,
        "gpu_seconds_per_candidate": sum(gpu_s.values()), "gpu_seconds_by_stage": gpu_s,
        "hours_on_gpus": {str(g): plan_hours(gpu_s, n, g)["total"] for g in (1, 4, 16)},
        "hours_on_gpus_masking_on_one": {str(g): plan_hours(gpu_s, n, g, ("generation", "scoring"))["total"]
                                         for g in (1, 4, 16)},
        "cpu_seconds_per_candidate": cpu_s, "cpu_days_extrapolated": n * cpu_s / 86400,
        "cpu_denoising_steps_measured": res.get("denoising_steps", 2),
        "disk_bytes_per_candidate": {"celeba": celeba["total"] + thumb, "celeba_thumbnail": thumb,
                                     "waterbirds": wb["total"] + thumbnail_bytes(WATERBIRDS_SIZE)},
        "disk_gb": n * (celeba["total"] + thumb) / 1e9,
        "disk_gb_ig_float32_before": n * CELEBA_SIZE[0] * CELEBA_SIZE[1] * 4 / 1e9,
        "overhead_ratio_cpu_measured": res["overhead_ratio_50_steps"],
        "overhead_ratio_flops": (f["masking"] + f["scoring"]) / f["generation"],
        "paper_hours": PAPER_CELEBA["hours"], "paper_seconds_per_candidate": paper_s,
        "paper_implied_tflops": total_flops / paper_s / 1e12,
    }


def plan_markdown(res: dict) -> str:
    p = res["plan_120k"]
    h, h1 = p["hours_on_gpus"], p["hours_on_gpus_masking_on_one"]
    fs = p["flops_by_stage"]
    at = p["flops_at"]
    k = p["k_per_class"]
    canvas = f"{at['canvas_hw'][1]}×{at['canvas_hw'][0]}" if at.get("canvas_hw") else "512×512"
    dino = f"{at['dino_input_hw'][1]}×{at['dino_input_hw'][0]}" if at.get("dino_input_hw") else "its processor's size"
    return "\n".join([
        f"Written by `{res.get('plan_command', res['command'])}` from the run of `{res['command']}` on {res['device']}; see "
        f"docs/benchmarks.md, section \"The full-size path\".",
        "",
        f"| {p['candidates']:,} CelebA candidates (`ddb select --k-total {p['candidates']}`: "
        f"{', '.join(f'{v:,} {c}' for c, v in k.items())}), 50 denoising steps on a {canvas} canvas, LangSAM, 50 IG "
        f"steps | time |",
        "| --- | ---: |",
        f"| 1 × {p['gpu']} | {h['1']:.1f} h |",
        f"| 4 × {p['gpu']} (Ray, one model per GPU, masking too) | {h['4']:.1f} h |",
        f"| 16 × {p['gpu']} (Ray cluster) | {h['16']:.1f} h |",
        f"| the paper's figure (Table 9, one A100, {PAPER_CELEBA['candidates']:,} candidates) | {p['paper_hours']:.0f} h |",
        f"| the CPU it ran on, **extrapolated** ({p['cpu_denoising_steps_measured']} denoising steps measured, 50 "
        f"assumed) | {p['cpu_days_extrapolated']:,.0f} days |",
        "",
        f"The GPU rows are **extrapolations, not measurements**: each candidate needs "
        f"{p['flops_per_candidate'] / 1e12:.1f} TFLOP (generation {fs['generation'] / 1e12:.1f} — one VAE encode of the "
        f"masked image, 50 UNet steps with classifier-free guidance, one decode, on the {canvas} canvas a 178×218 "
        f"image gets —, masking {fs['masking'] / 1e12:.1f} — GroundingDINO base at {dino}, SAM ViT-H at 1024 —, "
        f"scoring {fs['scoring'] / 1e12:.2f}; counted on the real architectures by torch's FLOP counter), at an "
        f"assumed {p['gpu_utilisation_assumed']:.0%} of the {p['gpu']}'s {p['gpu_peak_tflops']:.0f} TFLOPS float16 "
        f"peak. The stages run one after another over every candidate, each spread over the GPUs by Ray (`ddb mask "
        f"--engine ray`, `ddb generate`, `ddb score`), with no loss between GPUs; with masking on one GPU (`ddb mask` "
        f"without Ray) the rows would be {h1['4']:.1f} h and {h1['16']:.1f} h. The CPU row is this run's measured cost "
        f"per candidate with its 50 denoising steps extrapolated from the 2 measured. The paper's 5 h for "
        f"{PAPER_CELEBA['candidates']:,} candidates on one A100 would need {p['paper_implied_tflops']:.0f} TFLOPS "
        f"sustained at these settings, "
        + ("more than the A100's peak: that run must have used fewer denoising steps, a lower resolution or more than "
           "one GPU." if p["paper_implied_tflops"] > p["gpu_peak_tflops"] else "within the A100's peak.")
        + " On a GPU, `ddb bench fullscale` measures instead of assuming.",
        "",
        f"Two ratios of the work beside the diffusion: **{p['overhead_ratio_cpu_measured']:.2f}** in seconds measured on "
        f"this CPU (masking + scoring + storage over 50 denoising steps, Waterbirds and CelebA sizes together), "
        f"**{p['overhead_ratio_flops']:.2f}** in counted FLOPs at CelebA's size (masking + scoring over generation), "
        f"which is what a GPU's time follows.",
        "",
        f"Disk: {p['disk_bytes_per_candidate']['celeba'] / 1e3:.0f} KB per CelebA-size candidate (image, mask, "
        f"compact IG map, row, measured; its gallery thumbnail, {p['disk_bytes_per_candidate']['celeba_thumbnail'] / 1e3:.1f}"
        f" KB), so {p['disk_gb']:.1f} GB for {p['candidates']:,} (the IG maps alone were "
        f"{p['disk_gb_ig_float32_before']:.1f} GB as float32 at the source's size). A Waterbirds-size candidate takes "
        f"{p['disk_bytes_per_candidate']['waterbirds'] / 1e3:.0f} KB.",
    ])
