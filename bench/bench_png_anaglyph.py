"""Time the two slow output paths of a video's frames: writing a side-by-side frame as PNG (8-bit
and 16-bit, by zlib level), and the anaglyph layout stage against side by side. Frames are the
synthetic scene at 1080p per eye; times are the best of --repeats runs, wall seconds.

    python bench/bench_png_anaglyph.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench_warp import SIZES, cpu_name
from sbsconvert.layout import DUBOIS_LEFT, DUBOIS_RIGHT, compose
from sbsconvert.output import quantize, write_image
from sbsconvert.synthetic import render_scene


def best(action, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def previous_anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The anaglyph as it was before the banded mix: whole-frame matrix products and np.where curves."""
    def decode(values):
        return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)

    def encode(values):
        return np.where(values <= 0.0031308, values * 12.92, 1.055 * np.power(values, 1 / 2.4) - 0.055)

    linear = DUBOIS_LEFT @ decode(left[..., :3]).reshape(-1, 3).T
    linear += DUBOIS_RIGHT @ decode(right[..., :3]).reshape(-1, 3).T
    return encode(np.clip(linear.T, 0.0, 1.0)).reshape(left.shape[:2] + (3,)).astype(np.float32)


def previous_16_bit_png(pixels: np.ndarray, path: Path) -> None:
    """The 16-bit PNG writer before: OpenCV (its default zlib level, no colour chunks or EXIF)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(quantize(pixels, 65535, np.uint16), cv2.COLOR_RGB2BGR))
    encoded.tofile(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    width, height = SIZES["1080p"]
    scene = render_scene(width, height)
    left = scene.left.astype(np.float32)
    right = np.roll(left, -8, axis=1)
    (frame,) = compose(left, right, "sbs")
    # A 10-bit source's frames have noise below 8 bits; the synthetic scene alone would compress
    # far better than a real HDR frame.
    deep = np.clip(frame + np.random.default_rng(0).normal(0, 0.002, frame.shape).astype(np.float32), 0, 1)
    print(f"device: {cpu_name()}, frame {frame.shape[1]}x{frame.shape[0]} (sbs of 1080p eyes)")
    print("| PNG frame | zlib level | s/frame | frames/s | MB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "frame.png"
        for bits, pixels in ((8, frame), (16, deep)):
            for level in (1, 6, 9):
                seconds = best(lambda: write_image(pixels, out, force=True, bit_depth=bits, png_compression=level),
                               args.repeats)
                print(f"| {bits}-bit | {level} | {seconds:.3f} | {1 / seconds:.1f} | {out.stat().st_size / 1e6:.2f} |")
        seconds = best(lambda: previous_16_bit_png(deep, out), args.repeats)
        print(f"| 16-bit, OpenCV (before) | default | {seconds:.3f} | {1 / seconds:.1f} | {out.stat().st_size / 1e6:.2f} |")

    megapixels = width * height / 1e6  # per eye: both layouts read two eyes of this size
    print()
    print("| layout stage, 1080p eyes | ms | ms per eye megapixel |")
    print("|---|---|---|")
    for name, action in (("sbs", lambda: compose(left, right, "sbs")),
                         ("anaglyph", lambda: compose(left, right, "anaglyph")),
                         ("anaglyph (before)", lambda: previous_anaglyph(left, right))):
        seconds = best(action, args.repeats)
        print(f"| {name} | {seconds * 1000:.1f} | {seconds * 1000 / megapixels:.1f} |")


if __name__ == "__main__":
    main()
