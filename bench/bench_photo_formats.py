"""Time writing one stereo pair as a side-by-side JPEG, an MPO and a spatial HEIC, and the HEIC's
meta-box rewrite alone, on the synthetic scene at common photo sizes (per eye). Times are CPU
seconds of the whole process (all encoder threads), which a busy shared machine distorts less
than wall time.

    python bench/bench_photo_formats.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pillow_heif

from bench_warp import SIZES, cpu_name
from sbsconvert.layout import compose
from sbsconvert.output import write_image, write_mpo
from sbsconvert.spatial_photo import StereoCameras, add_stereo_pair, encode_heif, write_spatial_heic
from sbsconvert.synthetic import render_scene


def best(action, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.process_time()
        action()
        timings.append(time.process_time() - start)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    info = pillow_heif.libheif_info()
    print(f"device: {cpu_name()}, pillow_heif {pillow_heif.__version__}, libheif {info['libheif']}, {info['HEIF']}")
    print("| size per eye | sbs .jpg CPU s | .mpo CPU s | spatial .heic CPU s | meta rewrite ms | .jpg MB | .mpo MB "
          "| .heic MB |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for label, (width, height) in SIZES.items():
            scene = render_scene(width, height)
            left = scene.left.astype(np.float32)
            right = np.roll(left, -8, axis=1)  # a second view; the content does not matter for timing
            views = [left, right]
            jpg = best(lambda: write_image(compose(left, right, "sbs")[0], out / "x_LR.jpg", force=True), args.repeats)
            mpo = best(lambda: write_mpo(views, out / "x.mpo", force=True), args.repeats)
            heic = best(lambda: write_spatial_heic(views, out / "x.heic", force=True), args.repeats)
            plain = encode_heif(views)
            rewrite = best(lambda: add_stereo_pair(plain, StereoCameras()), args.repeats)
            sizes = [(out / name).stat().st_size / 1e6 for name in ("x_LR.jpg", "x.mpo", "x.heic")]
            print(f"| {label} {width}x{height} | {jpg:.2f} | {mpo:.2f} | {heic:.2f} | {rewrite * 1000:.1f} | "
                  + " | ".join(f"{size:.2f}" for size in sizes) + " |")


if __name__ == "__main__":
    main()
