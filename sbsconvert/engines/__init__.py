"""Stereo engines: `warp` (model-free, fast) and `diffusion` (StereoDiffusion)."""
