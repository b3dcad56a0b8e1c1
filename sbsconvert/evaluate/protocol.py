"""Evaluation protocols: what size the pairs are scored at and what disparity the engines get.

native  Full resolution; the engines get the true disparity in pixels as the shift.
paper   StereoDiffusion's protocol (docs/METHOD.md): every view resized to 512x512 (KITTI:
        scaled so the shorter side is 512, then centre-cropped; Middlebury and generic sets:
        resized directly, as the paper does for Middlebury), disparities scaled with the width.
        Middlebury's ground truth is blurred with a Gaussian of radius 3 (taken as PIL's radius,
        i.e. sigma = 3 pixels, at 512x512) before the engines get it. The engines see the
        disparity as the paper's normalised map D = d / s with s the pair's true maximum
        disparity (Middlebury: calib.txt's vmax; others: the largest ground-truth value), scaled
        to the working size; their shift is s * D.

Either way the scores compare with the true right view, and the occlusion masks come from the
unblurred true disparity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sbsconvert.evaluate.datasets import StereoSample, fill_unknown

PROTOCOLS = ("native", "paper")
PAPER_SIZE = 512
PAPER_BLUR_SIGMA = 3.0


@dataclass
class EvalPair:
    """A pair at the size it is scored at."""

    name: str
    left: np.ndarray  # HxWx3
    right: np.ndarray  # HxWx3, the true right view
    disparity: np.ndarray  # HxW true left disparity in pixels, stand-in values where unknown
    known: np.ndarray  # HxW bool, where `disparity` is ground truth
    engine_disparity: np.ndarray  # HxW pixels, the shift the engines get from the ground truth
    scale: float  # the paper's s: the pair's maximum disparity in pixels at this size


def prepare(sample: StereoSample, layout: str, protocol: str) -> EvalPair:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'")
    left, right, values, known = sample.left, sample.right, sample.disparity, sample.known
    width_scale = 1.0
    if protocol == "paper":
        height, width = values.shape
        if layout == "kitti":
            factor = PAPER_SIZE / min(height, width)
            size = (max(PAPER_SIZE, round(width * factor)), max(PAPER_SIZE, round(height * factor)))
        else:
            size = (PAPER_SIZE, PAPER_SIZE)
        width_scale = size[0] / width
        left, right = _resize_image(left, size), _resize_image(right, size)
        values, known = _resize_disparity(values, known, size)
        left, right, values, known = (_centre_crop(a, PAPER_SIZE) for a in (left, right, values, known))
    filled = fill_unknown(values, known)
    engine_disparity = filled
    if protocol == "paper" and layout == "middlebury":
        engine_disparity = cv2.GaussianBlur(filled, (0, 0), PAPER_BLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
    return EvalPair(
        name=sample.name,
        left=left,
        right=right,
        disparity=filled,
        known=known,
        engine_disparity=engine_disparity.astype(np.float32),
        scale=sample.max_disparity * width_scale,
    )


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    shrinking = size[0] * size[1] < array.shape[0] * array.shape[1]
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR).astype(np.float32)


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.clip(_resize(image, size), 0, 1)


def _resize_disparity(values: np.ndarray, known: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize known values only (weighted by the known mask, so unknowns never bleed in); a pixel
    stays known when at least half its source weight was known. Values scale with the width."""
    weight = _resize(known.astype(np.float32), size)
    total = _resize(values * known, size)
    resized_known = weight >= 0.5
    resized = np.where(resized_known, total / np.maximum(weight, 1e-6), 0) * (size[0] / values.shape[1])
    return resized.astype(np.float32), resized_known


def _centre_crop(array: np.ndarray, side: int) -> np.ndarray:
    height, width = array.shape[:2]
    top, left = (height - side) // 2, (width - side) // 2
    return np.ascontiguousarray(array[top : top + side, left : left + side])
