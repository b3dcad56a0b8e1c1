"""Randomly initialised Stable Diffusion pipelines saved as diffusers folders.

No model hub is reachable in CI, so tests (a tiny architecture) and speed benchmarks (the exact
SD 1.5 architecture: the cost of a forward pass does not depend on the weights) save random
models to a folder and load them back through the same `from_pretrained` path as a real
checkpoint. The tokenizer knows single lower-case letters only, enough for any test prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


@dataclass(frozen=True)
class Architecture:
    """Constructor arguments of the UNet, the VAE and the CLIP text encoder."""

    unet: dict[str, Any]
    vae: dict[str, Any]
    text: dict[str, Any] = field(default_factory=dict)


SD15 = Architecture(
    unet=dict(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
    ),
    vae=dict(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        sample_size=512,
    ),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
)

TINY = Architecture(
    unet=dict(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    ),
    vae=dict(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    ),
    text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
)


def save_random_pipeline(folder: Path, architecture: Architecture, *, depth: bool = False, seed: int = 0) -> Path:
    """Build a random pipeline of `architecture` (with a depth input channel for SD 2 depth
    shapes), save it under `folder`/pipeline and return that folder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(in_channels=5 if depth else 4, out_channels=4, **architecture.unet)
    vae = AutoencoderKL(latent_channels=4, **architecture.vae)
    vocabulary = _write_letter_vocabulary(Path(folder) / "vocabulary")
    # from_pretrained reads vocab.json / merges.txt the same way in transformers 4 and 5 (whose
    # constructors name these arguments differently).
    tokenizer = CLIPTokenizer.from_pretrained(str(vocabulary), model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            **architecture.text,
        )
    )
    # Stable Diffusion 1.x's own noise schedule.
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    target = Path(folder) / "pipeline"
    pipeline.save_pretrained(target)
    return target


def _write_letter_vocabulary(folder: Path) -> Path:
    """A folder holding a CLIP BPE vocabulary of single letters and no merges."""
    vocab = {token: index for index, token in enumerate(_SPECIAL_TOKENS)}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder
