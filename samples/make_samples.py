"""Regenerate the files in samples/ (needs scikit-image, which ships the real photos).

    python samples/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sbsconvert.disparity import write_pfm
from sbsconvert.synthetic import Layer, default_layers, render_scene, smooth_texture

HERE = Path(__file__).parent
DISPARITY = HERE / "disparity"  # maps named like the photos, so `--disparity samples/disparity` finds them
TRUTH = HERE / "truth"  # the real right views, for tests and evaluation
EVAL = HERE / "eval"  # `sbsconvert eval` set, generic layout: NAME_left.png, NAME_right.png, NAME_disp.png
EVAL_SIZE = (256, 192)


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


def clip(seconds: int = 2, rate: int = 30, sample_rate: int = 48000) -> None:
    """A short H.264 clip with an AAC tone, from a fixed camera (so one disparity map fits every
    frame): the synthetic scene under light that brightens and dims."""
    import av

    scene = render_scene(320, 240)
    save_disparity_png16(DISPARITY / "clip.png", scene.disparity)
    frames = seconds * rate
    with av.open(str(HERE / "clip.mp4"), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"crf": "23"})
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = container.add_stream("aac", rate=sample_rate)
        for index in range(frames):
            gain = 0.8 + 0.2 * np.sin(2 * np.pi * index / frames)
            pixels = np.round(np.clip(scene.left * gain, 0, 1) * 255).astype(np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(video.encode(None))
        samples = seconds * sample_rate
        tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / sample_rate)).astype(np.float32)
        for start in range(0, samples, 1024):
            block = av.AudioFrame.from_ndarray(np.stack([tone[start : start + 1024]] * 2), format="fltp", layout="stereo")
            block.sample_rate, block.pts = sample_rate, start
            container.mux(audio.encode(block))
        container.mux(audio.encode(None))


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


def save_disparity_kitti(path: Path, values: np.ndarray, known: np.ndarray | None = None) -> None:
    """Pixel disparity as a 16-bit PNG in KITTI's encoding (value * 256, 0 = unknown): 1/256 pixel
    steps and far smaller than a float map."""
    encoded = np.clip(np.round(values * 256), 1, 65535).astype(np.uint16)
    cv2.imwrite(str(path), np.where(known, encoded, 0).astype(np.uint16) if known is not None else encoded)


def pillar_layers(width: int, height: int) -> list[Layer]:
    """Thin occluders: a far wall and a row of narrow pillars at increasing disparities."""
    unit = width / 256.0
    constant = lambda value: (lambda rows: np.full_like(rows, value, dtype=np.float64))
    layers = [Layer(lambda x, y: np.ones_like(x, dtype=bool), constant(1.0), smooth_texture(5, (0.6, 0.55, 0.45), 19))]
    for number in range(5):
        centre, half = (0.15 + 0.17 * number) * width, (0.03 + 0.01 * number) * width
        top = (0.1 + 0.05 * number) * height
        layers.append(
            Layer(
                lambda x, y, c=centre, h=half, t=top: (abs(x - c) < h) & (y > t),
                constant(round((4 + 4 * number) * unit)),
                smooth_texture(6 + number, (0.3 + 0.1 * number, 0.35, 0.6 - 0.08 * number), 7 + 2 * number),
            )
        )
    return layers


def slope_layers(width: int, height: int) -> list[Layer]:
    """A tilted ground rising to the top edge (fractional disparities on every row), a floating
    card and a ball overlapping it."""
    unit = width / 256.0
    ground = lambda rows: 2 * unit + 14 * unit * rows / (height - 1)
    constant = lambda value: (lambda rows: np.full_like(rows, value, dtype=np.float64))
    return [
        Layer(lambda x, y: np.ones_like(x, dtype=bool), ground, smooth_texture(11, (0.45, 0.55, 0.35), 15)),
        Layer(
            lambda x, y: (abs(x - 0.62 * width) < 0.2 * width) & (abs(y - 0.35 * height) < 0.15 * height),
            constant(round(18 * unit)),
            smooth_texture(12, (0.8, 0.75, 0.4), 9),
        ),
        Layer(
            lambda x, y: (x - 0.4 * width) ** 2 + (y - 0.5 * height) ** 2 < (0.12 * width) ** 2,
            constant(round(24 * unit)),
            smooth_texture(13, (0.7, 0.3, 0.5), 12),
        ),
    ]


def eval_set() -> None:
    """Synthetic scenes with exact truth, and the Middlebury Motorcycle pair scikit-image ships
    (downscaled once more, unknown disparities kept unknown) for `sbsconvert eval samples/eval`."""
    width, height = EVAL_SIZE
    for name, layers in (("layers", default_layers), ("pillars", pillar_layers), ("slope", slope_layers)):
        scene = render_scene(width, height, layers(width, height))
        save_rgb(EVAL / f"{name}_left.png", scene.left)
        save_rgb(EVAL / f"{name}_right.png", scene.right)
        save_disparity_kitti(EVAL / f"{name}_disp.png", scene.disparity)
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    size = (round(left.shape[1] / 3), round(left.shape[0] / 3))
    shrink = lambda image: cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    Image.fromarray(shrink(left)).save(EVAL / "motorcycle_left.png", optimize=True)
    Image.fromarray(shrink(right)).save(EVAL / "motorcycle_right.png", optimize=True)
    known = np.isfinite(disparity)
    # Average known values only; a pixel stays known when at least half of its area was.
    weight = shrink(known.astype(np.float32))
    values = shrink(np.where(known, disparity, 0).astype(np.float32)) / np.maximum(weight, 1e-6)
    save_disparity_kitti(EVAL / "motorcycle_disp.png", values * size[0] / left.shape[1], weight >= 0.5)


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
    EVAL.mkdir(exist_ok=True)
    synthetic()
    clip()
    motorcycle()
    photos()
    eval_set()
