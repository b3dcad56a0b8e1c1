"""Regenerate the files in samples/ (needs scikit-image, which ships the real photos).

    python samples/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sbsconvert.disparity import write_pfm
from sbsconvert.synthetic import render_scene

HERE = Path(__file__).parent
DISPARITY = HERE / "disparity"  # maps named like the photos, so `--disparity samples/disparity` finds them
TRUTH = HERE / "truth"  # the real right views, for tests and evaluation


def save_rgb(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path, optimize=True)


def save_disparity_png16(path: Path, values: np.ndarray) -> None:
    """Relative disparity (larger = nearer) as a 16-bit grayscale PNG."""
    span = float(values.max() - values.min()) or 1.0
    scaled = (values - values.min()) / span
    cv2.imwrite(str(path), np.round(scaled * 65535).astype(np.uint16))


def synthetic() -> None:
    scene = render_scene(320, 240)
    save_rgb(HERE / "synthetic.png", scene.left)
    save_rgb(TRUTH / "synthetic_right.png", scene.right)
    write_pfm(DISPARITY / "synthetic.pfm", scene.disparity)
    cv2.imwrite(str(TRUTH / "synthetic_nonocc.png"), scene.non_occluded.astype(np.uint8) * 255)


def motorcycle() -> None:
    """Middlebury 2014 'Motorcycle' as shipped (downscaled) by scikit-image, with its true disparity."""
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    Image.fromarray(left).save(HERE / "motorcycle.png", optimize=True)
    Image.fromarray(right).save(TRUTH / "motorcycle_right.png", optimize=True)
    known = np.isfinite(disparity)
    # Unknown (+inf) pixels are filled from their neighbours so the map is usable as it is.
    filled = cv2.inpaint(np.where(known, disparity, 0).astype(np.float32), (~known).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    write_pfm(DISPARITY / "motorcycle.pfm", filled)


def heuristic_disparity(shape: tuple[int, int], centre: tuple[float, float], radius: tuple[float, float]) -> np.ndarray:
    """A rough hand-made disparity: the subject (an ellipse) in front of a scene receding upwards."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ground = 0.15 + 0.35 * y / height
    subject = np.exp(-(((x - centre[0] * width) / (radius[0] * width)) ** 2 + ((y - centre[1] * height) / (radius[1] * height)) ** 2) ** 2)
    return cv2.GaussianBlur(np.maximum(ground, 0.35 + 0.65 * subject), (0, 0), 3)


def photos() -> None:
    from skimage import data

    chelsea = data.chelsea()
    Image.fromarray(chelsea).save(HERE / "chelsea.jpg", quality=95)
    save_disparity_png16(DISPARITY / "chelsea.png", heuristic_disparity(chelsea.shape[:2], (0.45, 0.55), (0.33, 0.5)))
    coffee = data.coffee()
    Image.fromarray(coffee).save(HERE / "coffee.jpg", quality=95)
    save_disparity_png16(DISPARITY / "coffee.png", heuristic_disparity(coffee.shape[:2], (0.45, 0.5), (0.33, 0.45)))


if __name__ == "__main__":
    DISPARITY.mkdir(exist_ok=True)
    TRUTH.mkdir(exist_ok=True)
    synthetic()
    motorcycle()
    photos()
