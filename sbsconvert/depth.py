"""Monocular depth through transformers' depth-estimation models (Depth Anything, DPT, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sbsconvert.device import Compute
from sbsconvert.disparity import DEPTH_MODEL_ALTERNATIVES, Disparity, disparity_from_array
from sbsconvert.hub import load_pretrained



def load_depth_model(model_name: str, compute: Compute, resolution: int | None = None) -> Any:
    """The depth model --depth-model names: Video Depth Anything (its hub id, alias such as
    vda-small, or checkpoint) or a transformers depth-estimation model."""
    from sbsconvert.depth_video import VideoDepthEstimator, is_video_depth_model

    if is_video_depth_model(model_name):
        return VideoDepthEstimator(model_name, compute, resolution)
    return DepthEstimator(model_name, compute, resolution)


class DepthEstimator:
    """Loads a depth-estimation model once and turns images into relative disparity maps."""

    def __init__(self, model_name: str, compute: Compute, resolution: int | None = None):
        """resolution: the network sees about this many pixels on the short side (aspect kept);
        None keeps the model's own (518 for Depth Anything). Lower is faster and coarser."""
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.name = model_name
        self.compute = compute
        self.resolution = resolution
        self.processor = load_pretrained(
            AutoImageProcessor.from_pretrained, model_name, what="depth model", alternatives=DEPTH_MODEL_ALTERNATIVES
        )
        model = load_pretrained(
            AutoModelForDepthEstimation.from_pretrained, model_name, what="depth model", alternatives=DEPTH_MODEL_ALTERNATIVES
        )
        self.model = model.to(device=compute.device, dtype=compute.dtype).eval()
        config = self.model.config
        # Metric models (ZoeDepth, Depth Anything "metric") predict depth; relative ones predict
        # inverse depth, which is already disparity up to scale.
        self.predicts_depth = (
            getattr(config, "depth_estimation_type", None) == "metric" or config.model_type == "zoedepth"
        )

    def __call__(self, pixels: np.ndarray) -> Disparity:
        return self.batch([pixels])[0]

    @torch.inference_mode()
    def batch(self, frames: list[np.ndarray]) -> list[Disparity]:
        """Disparity of several images of one size (a video's frames) from one pass of the network,
        which a GPU runs in about the time of one."""
        height, width = frames[0].shape[:2]
        images = [Image.fromarray(np.round(np.clip(pixels[:, :, :3], 0, 1) * 255).astype(np.uint8)) for pixels in frames]
        sizing = {"size": {"height": self.resolution, "width": self.resolution}} if self.resolution else {}
        inputs = self.processor(images=images, return_tensors="pt", **sizing)
        pixel_values = inputs["pixel_values"].to(device=self.compute.device, dtype=self.compute.dtype)
        predicted = self.model(pixel_values=pixel_values).predicted_depth
        predicted = F.interpolate(predicted[:, None].float(), size=(height, width), mode="bicubic", align_corners=False)
        kind = "depth" if self.predicts_depth else "relative"
        return [disparity_from_array(values[0].cpu().numpy().astype(np.float32), kind, name=f"depth model {self.name}")
                for values in predicted]
