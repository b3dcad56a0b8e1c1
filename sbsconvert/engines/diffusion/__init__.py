"""The `diffusion` stereo engine: StereoDiffusion (Wang et al., CVPR 2024 workshops) on diffusers.

Modes
    image -> stereo   DiffusionEngine.render(StereoRequest): VAE encode, DDIM inversion (or the
                      paper's null-text inversion), Stereo Pixel Shift of the left latent at the
                      shift step, SPSMD denoising with cross-view self-attention, VAE decode;
                      the hybrid composite (default) keeps the warp engine's full-resolution
                      right view and takes only its disocclusions from the decoded result.
    text -> stereo    DiffusionEngine.generate(divergence=..., disparity_for=...): generates the
                      left view from settings.prompt, takes its disparity, then the right view.
    depth -> stereo   DiffusionEngine.generate(divergence=..., depth=Disparity): an SD 2 depth
                      model; the map conditions the UNet (each view its own, warped, map) and
                      gives the disparity.

Modules: settings (DiffusionSettings), models (loading through from_pretrained, VAE/text/UNet
calls), shift (latent pixel shift + disocclusion mask), attention (attn1 processor, KVCache),
inversion (DDIM, null-text), sampler (guidance batch, DDIM loops, SPSMD schedule), composite
(hybrid: warp + painted holes, colour matching), crops (native-resolution crops around holes),
engine (entry points).

Cross-frame attention (for video)
    The right view can also attend to a cached set of keys/values, e.g. those of an anchor
    frame's left view, so consecutive frames fill their disocclusions alike::

        anchor = KVCache()
        engine.render(first_frame_request, record=anchor)    # collects left K/V per step and layer
        for request in later_frames:
            pair = engine.render(request, reference=anchor)   # right views also read anchor's K/V

    The cache holds, per joint denoising step and attn1 layer, the source view's keys and
    values (G x heads x tokens x dim, G = 2 with classifier-free guidance) on the compute
    device: for SD 1.5 at 512x512 and 40 joint steps about 1.8 GB in bf16 without guidance,
    twice that with it (KVCache.nbytes). The reference must come from the same model, steps,
    shift step and guidance; the frame size may differ. The left (source) view never reads
    the reference, so with unidirectional attention it stays exactly as without one.
"""

from typing import Any

from sbsconvert.choices import ATTENTION_MODES, DEFAULT_SD_DEPTH_MODEL, DEFAULT_SD_MODEL, INVERSIONS
from sbsconvert.engines.diffusion.settings import DiffusionSettings

# The engine and its attention classes load torch and diffusers: imported on first use (PEP 562),
# so that the settings can be read without them.
_LAZY = {"AttentionState": "attention", "KVCache": "attention", "StereoAttnProcessor": "attention",
         "DiffusionEngine": "engine"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTENTION_MODES",
    "DEFAULT_SD_DEPTH_MODEL",
    "DEFAULT_SD_MODEL",
    "INVERSIONS",
    "AttentionState",
    "DiffusionEngine",
    "DiffusionSettings",
    "KVCache",
    "StereoAttnProcessor",
]
