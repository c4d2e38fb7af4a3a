"""Small Stable Diffusion inpainting pipelines built in-process from configs.

Consumes a ``MicroSDConfig`` and produces the five components of a diffusers
``StableDiffusionInpaintPipeline`` — ``AutoencoderKL``, ``UNet2DConditionModel`` with 9 input
channels (latents + masked-image latents + mask), ``CLIPTextModel``, a ``CLIPTokenizer`` built
from a local word list (nothing from the Hub), and a scheduler — with random weights. Tests use
the tiny preset; the demo's micro model is trained from the same builder and saved with
``save_pretrained``, so it loads through exactly the code path of SD2-inpainting.
"""

from __future__ import annotations

from dataclasses import dataclass

# Words the demo's captions and prompts use; every other word falls back to characters.
BASE_WORDS = (
    "a", "photo", "of", "the", "bird", "on", "in", "land", "water", "background", "picture", "an", "image",
    "landbird", "waterbird", "with", "and", "small", "large",
    # class-agnostic attributes of the demo's training captions (colour of the bird, side of the image)
    "red", "orange", "yellow", "green", "blue", "purple", "brown", "gray", "white", "black", "left", "right",
)


SD_BETAS = (0.00085, 0.012)  # Stable Diffusion's scaled-linear betas, first and last


@dataclass(frozen=True)
class MicroSDConfig:
    """Sizes of a small SD inpainting model. Defaults: the tiny preset for tests (64 px, 2 steps)."""

    sample_size: int = 64  # image side in pixels
    vae_channels: tuple[int, ...] = (16, 32)  # VAE block widths; latents are sample_size / 2**(len-1)
    latent_channels: int = 4
    unet_channels: tuple[int, ...] = (32, 64)  # UNet block widths
    unet_layers_per_block: int = 1
    attention_head_dim: int = 8
    text_hidden: int = 32  # CLIP text encoder width = cross-attention dim
    text_layers: int = 2
    text_heads: int = 4
    max_text_len: int = 16  # tokens per prompt, including start and end
    words: tuple[str, ...] = BASE_WORDS
    seed: int = 0
    # The noise schedule: Stable Diffusion's (scaled-linear betas, ε-prediction) with every timestep's SNR multiplied
    # by ``snr_shift`` (> 1 = less noise, for latents smaller than SD's 64 px), then, with ``zero_terminal_snr``,
    # rescaled so that the last timestep is pure noise, with v-prediction and trailing timesteps
    # (docs/decisions/micro-noise-schedule.md). The defaults are SD's schedule.
    snr_shift: float = 1.0
    zero_terminal_snr: bool = False

    @property
    def latent_size(self) -> int:
        return self.sample_size // 2 ** (len(self.vae_channels) - 1)


def build_clip_tokenizer(words=BASE_WORDS):
    """A CLIP BPE tokenizer whose vocabulary is the 26 letters plus ``words`` as whole tokens.

    The merges spell each word left to right, so every listed word is one token and any other
    lower-case word still tokenises (letter by letter). Nothing is downloaded.
    """
    from transformers import CLIPTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab: dict[str, int] = {}
    for tok in letters + [c + "</w>" for c in letters]:
        vocab[tok] = len(vocab)
    merges: list[tuple[str, str]] = []
    for w in sorted(set(words)):
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        cur = parts[0]
        for nxt in parts[1:]:
            merged = cur + nxt
            if (cur, nxt) not in merges:
                merges.append((cur, nxt))
            vocab.setdefault(merged, len(vocab))
            cur = merged
    # BPE applies merges by rank: a merge of one word ("o r" of "orange") can cut another's chain ("short" then
    # ends as "sh", "or", "t"). Append, at the lowest rank, the merge of the first two pieces of every word that
    # is not yet one token, until each is: a word already whole has no pair left to merge, so no appended merge
    # can split it.
    specials = ("<|startoftext|>", "<|endoftext|>")
    for _round in range(64):
        tok = CLIPTokenizer(vocab={**vocab, **{sp: len(vocab) + k for k, sp in enumerate(specials)}}, merges=merges)
        broken = [w for w in sorted(set(words)) if len(tok.tokenize(w)) > 1]
        if not broken:
            return tok
        for w in broken:
            a, b = tok.tokenize(w)[:2]
            if (a, b) not in merges:
                merges.append((a, b))
                vocab.setdefault(a + b, len(vocab))
    raise ValueError(f"could not make every word one token: {broken}")


def build_components(cfg: MicroSDConfig = MicroSDConfig()) -> dict:
    """Random-weight components of an SD inpainting pipeline, seeded."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(cfg.seed)
    tokenizer = build_clip_tokenizer(cfg.words)
    tokenizer.model_max_length = cfg.max_text_len
    n_vae = len(cfg.vae_channels)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n_vae, up_block_types=("UpDecoderBlock2D",) * n_vae,
        block_out_channels=cfg.vae_channels, layers_per_block=1, norm_num_groups=min(8, cfg.vae_channels[0]),
        sample_size=cfg.sample_size,
    )
    n_unet = len(cfg.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=cfg.latent_size, in_channels=2 * cfg.latent_channels + 1, out_channels=cfg.latent_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n_unet - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n_unet - 1) + ("UpBlock2D",),
        block_out_channels=cfg.unet_channels, layers_per_block=cfg.unet_layers_per_block,
        cross_attention_dim=cfg.text_hidden, attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=min(8, cfg.unet_channels[0]),
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_hidden * 4,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_text_len, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=cfg.text_hidden,
    ))
    scheduler = DDIMScheduler(beta_start=SD_BETAS[0], beta_end=SD_BETAS[1], beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1, **schedule_options(cfg))
    return {"vae": vae, "unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def schedule_options(cfg: MicroSDConfig) -> dict:
    """The DDIMScheduler options of ``cfg``'s noise schedule (none for SD's own): the shifted schedule as
    ``trained_betas``, zero terminal SNR with v-prediction and trailing timesteps."""
    import numpy as np

    from ..project.errors import ConfigError

    if not cfg.snr_shift > 0:
        raise ConfigError(f"snr_shift must be > 0, got {cfg.snr_shift}")
    out: dict = {}
    if cfg.snr_shift != 1.0:
        betas = np.linspace(SD_BETAS[0] ** 0.5, SD_BETAS[1] ** 0.5, 1000, dtype=np.float64) ** 2
        snr = np.cumprod(1 - betas) / (1 - np.cumprod(1 - betas)) * cfg.snr_shift
        alpha_bar = snr / (1 + snr)
        out["trained_betas"] = (1 - alpha_bar / np.concatenate([[1.0], alpha_bar[:-1]])).tolist()
    if cfg.zero_terminal_snr:
        out.update(rescale_betas_zero_snr=True, prediction_type="v_prediction", timestep_spacing="trailing")
    return out


def build_pipeline(cfg: MicroSDConfig = MicroSDConfig()):
    """A ``StableDiffusionInpaintPipeline`` of random-weight micro components (CPU, float32)."""
    from diffusers import StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline(**build_components(cfg), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
