"""Load a Stable Diffusion 1.x/2.x checkpoint (hub id or local diffusers folder) and run its parts.

Only the parts the method needs are loaded (UNet, VAE, CLIP text encoder and tokenizer, the
scheduler's configuration), each through `from_pretrained` behind `sbsconvert.hub.load_pretrained`,
so a missing model gives one clear line. No safety checker and no depth estimator are loaded: the
depth comes from sbsconvert's own depth stage or from the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sbsconvert.device import Compute
from sbsconvert.hub import load_pretrained

_ALTERNATIVES = "use `engine` warp, which needs no model"


@dataclass
class StableDiffusion:
    """The parts of one checkpoint, on one device and dtype; latents are float32 outside the UNet."""

    name: str
    unet: Any  # diffusers UNet2DConditionModel
    vae: Any  # diffusers AutoencoderKL
    text_encoder: Any  # transformers CLIPTextModel
    tokenizer: Any  # transformers CLIPTokenizer
    scheduler: Any  # diffusers DDIMScheduler
    compute: Compute
    unet_calls: int = 0  # UNet evaluations so far (a batch of views and guidance branches is one)

    @property
    def vae_scale(self) -> int:
        """Image pixels per latent pixel (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE and every UNet downsampling halve them."""
        return self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The image side the UNet was trained at (512 for SD 1.5)."""
        return int(self.unet.config.sample_size) * self.vae_scale

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def extra_channels(self) -> int:
        """UNet input channels beyond the latent: 1 for SD 2 depth (the depth map), else 0."""
        return int(self.unet.config.in_channels) - self.latent_channels

    @torch.no_grad()
    def encode_text(self, text: str) -> torch.Tensor:
        """CLIP embedding of one prompt, 1 x tokens x width, in the network dtype."""
        tokens = self.tokenizer(
            [text], padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        ids = tokens.input_ids.to(self.compute.device)
        return self.text_encoder(ids)[0].to(self.compute.dtype)

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W in [0, 1] to scaled latents (the posterior mean: deterministic)."""
        pixels = (image * 2 - 1).to(device=self.compute.device, dtype=self.compute.dtype)
        latents = self.vae.encode(pixels).latent_dist.mean
        return latents.float() * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents to B x 3 x H x W images in [0, 1], float32."""
        scaled = (latents / self.vae.config.scaling_factor).to(self.compute.dtype)
        image = self.vae.decode(scaled).sample.float()
        return (image / 2 + 0.5).clamp(0, 1)

    def predict(self, latents: torch.Tensor, timestep: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The UNet's output (noise, or v for v-prediction models) as float32.

        `latents` already carry any extra input channels; no gradient is taken unless the caller
        enables it (null-text inversion optimises the embeddings through this call).
        """
        sample = latents.to(self.compute.dtype)
        self.unet_calls += 1
        return self.unet(sample, timestep, encoder_hidden_states=embeddings.to(self.compute.dtype)).sample.float()


def load_stable_diffusion(name: str, compute: Compute) -> StableDiffusion:
    """Load the UNet, VAE, text encoder, tokenizer and a DDIM scheduler of checkpoint `name`."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    def load(loader: Any, subfolder: str, **kwargs: Any) -> Any:
        return load_pretrained(
            loader, name, what="Stable Diffusion model", alternatives=_ALTERNATIVES, subfolder=subfolder, **kwargs
        )

    # DDIM with the checkpoint's noise schedule; x0 clipping would clamp latents, which are not in [-1, 1].
    scheduler = load(DDIMScheduler.from_pretrained, "scheduler", clip_sample=False)
    if scheduler.config.timestep_spacing not in ("leading", "trailing"):
        # DDIM inversion (DDIMInverseScheduler) supports only these; "leading" is SD's own.
        scheduler = DDIMScheduler.from_config(scheduler.config, timestep_spacing="leading")
    tokenizer = load(CLIPTokenizer.from_pretrained, "tokenizer")
    text_encoder = load(CLIPTextModel.from_pretrained, "text_encoder").to(dtype=compute.dtype)
    vae = load(AutoencoderKL.from_pretrained, "vae", torch_dtype=compute.dtype)
    unet = load(UNet2DConditionModel.from_pretrained, "unet", torch_dtype=compute.dtype)
    for module in (unet, vae, text_encoder):
        # Null-text inversion differentiates through the UNet, but only for the embeddings.
        module.to(compute.device).eval().requires_grad_(False)
    # Channels-last (NHWC) convolutions for the UNet on CUDA, as diffusers' speed guide measures (SD
    # in fp16: 3.61 s -> 3.30 s an image). Not on the CPU: measured 1-4 % slower for the UNet; 5-12 %
    # faster for the VAE, but its results then vary with the thread count, so a segment on a Ray
    # worker no longer equals the one-piece run (bench/RESULTS.md).
    if compute.device.type == "cuda":
        unet.to(memory_format=torch.channels_last)
    return StableDiffusion(name, unet, vae, text_encoder, tokenizer, scheduler, compute)
