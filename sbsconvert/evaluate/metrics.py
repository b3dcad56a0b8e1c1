"""Image quality metrics for generated right views, and which right-view pixels are predictable.

Images are HxWxC float arrays in [0, 1]. Every metric takes an optional boolean HxW `mask`: the
metric is then computed over the masked pixels only (an empty mask gives NaN).

- PSNR: 10 log10(1 / MSE), MSE over all channels of the (masked) pixels; identical images give inf.
- SSIM: Wang, Bovik, Sheikh, Simoncelli (2004): local means, variances and covariance under an
  11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, dynamic range 1. The SSIM map has the
  image's size (borders reflected, where the paper keeps only windows fully inside the image), so a
  mask can select pixels: masked SSIM is the mean of the map over the mask. On the luminance
  (ITU-R BT.601 luma, as most published numbers) by default, or per RGB channel and averaged.
- LPIPS (Zhang et al. 2018) through the `lpips` package when it is installed with its weights;
  masked LPIPS is the mean of its spatial map over the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from sbsconvert.engines.warp import forward_warp
from sbsconvert.errors import first_line

SSIM_CHANNELS = ("luma", "rgb")
_SSIM_SIGMA = 1.5
_SSIM_WINDOW = 11
_C1 = 0.01**2
_C2 = 0.03**2
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def masked_mean(values: np.ndarray, mask: np.ndarray | None) -> float:
    if mask is None:
        return float(values.mean())
    if not mask.any():
        return float("nan")
    return float(values[mask].mean())


def psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0); inf when the (masked) pixels are identical."""
    error = (np.asarray(image, dtype=np.float64) - np.asarray(reference, dtype=np.float64)) ** 2
    mse = masked_mean(error.mean(axis=2) if error.ndim == 3 else error, mask)
    if np.isnan(mse):
        return mse
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image (the first three channels), HxW float64."""
    return np.asarray(image, dtype=np.float64)[..., :3] @ _LUMA


def _ssim_plane(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two single-channel HxW images in [0, 1]."""
    blur = lambda plane: cv2.GaussianBlur(plane, (_SSIM_WINDOW, _SSIM_WINDOW), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
    x, y = np.asarray(image, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x**2
    var_y = blur(y * y) - mean_y**2
    covariance = blur(x * y) - mean_x * mean_y
    numerator = (2 * mean_x * mean_y + _C1) * (2 * covariance + _C2)
    denominator = (mean_x**2 + mean_y**2 + _C1) * (var_x + var_y + _C2)
    return numerator / denominator


def ssim_map(image: np.ndarray, reference: np.ndarray, channels: str = "luma") -> np.ndarray:
    """Per-pixel SSIM (HxW) of two RGB images: on luma, or the mean of the RGB channels' maps."""
    if channels == "luma":
        return _ssim_plane(luma(image), luma(reference))
    if channels == "rgb":
        return np.mean([_ssim_plane(image[..., c], reference[..., c]) for c in range(3)], axis=0)
    raise ValueError(f"unknown SSIM channels '{channels}' (choose from {', '.join(SSIM_CHANNELS)})")


def ssim(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, channels: str = "luma") -> float:
    """Mean SSIM over the (masked) pixels."""
    return masked_mean(ssim_map(image, reference, channels), mask)


class Lpips:
    """LPIPS (AlexNet) when the `lpips` package and its weights are available; otherwise every
    score is NaN, after one notice that says why."""

    def __init__(self, device: torch.device | str = "cpu", notice: Any = print):
        self.device = torch.device(device)
        self.model: Any = None
        self.unavailable: str | None = None
        self._notice = notice
        try:
            import lpips  # optional: not a dependency of sbsconvert

            self.model = lpips.LPIPS(net="alex", spatial=True, verbose=False).to(self.device).eval()
        except Exception as error:  # missing package, or weights it cannot download offline
            self.unavailable = f"LPIPS unavailable ({first_line(error)}); its columns stay empty"
            self._notice(f"note: {self.unavailable}")

    @torch.no_grad()
    def distance_map(self, image: np.ndarray, reference: np.ndarray) -> np.ndarray | None:
        """Per-pixel LPIPS distance (HxW), or None when LPIPS is unavailable."""
        if self.model is None:
            return None
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a[..., :3], dtype=np.float32)).permute(2, 0, 1)[None]
        # lpips expects inputs in [-1, 1]
        first, second = (to_tensor(a).to(self.device) * 2 - 1 for a in (image, reference))
        return self.model(first, second)[0, 0].cpu().numpy()

    @staticmethod
    def score(distance: np.ndarray | None, mask: np.ndarray | None = None) -> float:
        return float("nan") if distance is None else masked_mean(distance, mask)


@dataclass
class RightViewMasks:
    """Which right-view pixels each metric covers (HxW bool each).

    non_occluded: seen in the left view at a pixel with known disparity (predictable by warping).
    disoccluded:  seen by no left pixel (behind a nearer surface, or beyond the left image's border).
    scored:       non_occluded | disoccluded; right pixels that come from left pixels of unknown
                  disparity are in neither, so they are left out of every metric.
    """

    non_occluded: np.ndarray
    disoccluded: np.ndarray

    @property
    def scored(self) -> np.ndarray:
        return self.non_occluded | self.disoccluded


def right_view_masks(disparity: np.ndarray, known: np.ndarray | None = None) -> RightViewMasks:
    """Classify the right view's pixels from the left view's disparity (pixels; a left pixel at x is
    seen at x - d on the right).

    A coverage map (the left pixels' `known` flags) is forward-warped with the warp engine's warp
    (nearest wins, spans stretched beyond 2 pixels at depth edges open holes): right pixels no
    left pixel reaches are disoccluded. Unknown disparities must already hold a stand-in value
    (see datasets.fill_unknown) so that they still occlude what lies behind them.
    """
    known = np.ones(disparity.shape, dtype=bool) if known is None else known
    values = torch.from_numpy(np.ascontiguousarray(disparity, dtype=np.float32))
    coverage = torch.from_numpy(known.astype(np.float32))[None]
    result = forward_warp(coverage, values, values)
    covered = result.valid.numpy()
    # Interpolated coverage below 1/2: the right pixel comes mostly from unknown-disparity pixels.
    from_known = result.image[0].numpy() >= 0.5
    return RightViewMasks(non_occluded=covered & from_known, disoccluded=~covered)
