"""Quality, bitrate and speed of each preset's video against a 2D encode of the same source.

    python bench/bench_presets.py [--frames 60] [--size 1280x720] [--clips collage photo]
        [--presets vision-pro quest3 cardboard anaglyph] [--bits-per-pixel 0.1 0.2] [--crf 20]

No real video ships in the installed packages, so the clips are made here from the real photos
scikit-image ships, moved like a camera (a slow sub-pixel pan with a slight zoom), at 30 fps:

- collage: native-resolution photos and textures (retina, Hubble deep field, motorcycle, coffee,
  rocket, astronaut, grass, gravel, brick) tiled into one large picture: fine detail everywhere,
  the hard case for an encoder;
- photo: the Middlebury motorcycle photo enlarged to cover the frame: softer, like camera footage;
- foliage: the collage rippling as leaves or water do (every pixel shifted by up to 3 px by a
  wave that changes each frame) under sensor-like noise (Gaussian, sigma 2 of 255, new every
  frame): motion no block search predicts well, the costliest of the three (x265 crf 20 spends
  about 4 times the collage's bits on it).

The source is written nearly losslessly (x264 crf 6) and decoded; its frames are the reference.
Each preset runs through the CLI (`--preset`, with one disparity map: a ramp, near at the bottom),
and once more with `--format sbs --frames-out` as PNG: the conversion before any encoding, whose
left half is the source frame and whose right half is the right eye the encode should keep.
Per eye, luma (BT.709) PSNR and SSIM of the decoded output against that reference, mean and worst
frame: sbs halves as they are; hsbs halves stretched back to full width, what the player shows
(the halving's own loss is shown alone as "unencoded"); the spatial file's two decoded views; the
anaglyph frame against the anaglyph of the reference eyes. The 2D baselines encode the source
frames themselves with the project's default constant quality (x265 crf 20, x264 crf 18).

`--bits-per-pixel` / `--crf` replace the presets' own rate (as `--bitrate` / `--crf` on the command
line) to see what a rate buys. Speed is the CLI's wall time and its CPU seconds (all threads) per frame.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data
from skimage.metrics import structural_similarity

from bench_warp import cpu_name
from sbsconvert.layout import compose, split
from sbsconvert.presets import load_preset
from sbsconvert.video.decode import VideoReader
from sbsconvert.video.encode import VideoSettings, VideoWriter

RATE = 30
PRESETS = ("vision-pro", "quest3", "cardboard", "anaglyph")
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # BT.709, what the outputs are tagged as


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def collage(width: int, height: int) -> np.ndarray:
    """Scikit-image's photos at their own resolution, packed row by row into a picture at least
    twice the frame's size (repeated when they run out)."""
    photos = [skimage.data.retina()[200:1200, 200:1200], skimage.data.hubble_deep_field(),
              skimage.data.stereo_motorcycle()[0], skimage.data.coffee(), skimage.data.rocket(),
              skimage.data.astronaut(), skimage.data.grass(), skimage.data.gravel(), skimage.data.brick()]
    photos = [grey_to_rgb(photo) for photo in photos]
    canvas_width, canvas_height = 2 * width, 2 * height
    rows, row, row_width, index = [], [], 0, 0
    while sum(piece.shape[0] for piece in rows) < canvas_height:
        photo = photos[index % len(photos)]
        index += 1
        row.append(photo)
        row_width += photo.shape[1]
        if row_width >= canvas_width:
            row_height = min(piece.shape[0] for piece in row)
            rows.append(np.concatenate([piece[:row_height] for piece in row], axis=1)[:, :canvas_width])
            row, row_width = [], 0
    return np.concatenate(rows, axis=0)[:canvas_height]


def enlarged_photo(width: int, height: int) -> np.ndarray:
    """The motorcycle photo enlarged (bicubic) to cover 1.3 times the frame."""
    photo = skimage.data.stereo_motorcycle()[0]
    scale = 1.3 * max(width / photo.shape[1], height / photo.shape[0])
    return cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


# Each clip: its picture, the ripple's amplitude in pixels and the noise (sigma, of 255) of each frame.
CLIPS = {"photo": (enlarged_photo, 0.0, 0.0), "collage": (collage, 0.0, 0.0), "foliage": (collage, 3.0, 2.0)}


def camera_move(picture: np.ndarray, width: int, height: int, frames: int, ripple: float,
                noise: float) -> list[np.ndarray]:
    """A pan across `picture` by a quarter of the free room, zooming from 1 to 1.08 (sub-pixel
    steps every frame, resampled like a camera's picture would be), each frame rippled by a wave
    of `ripple` pixels moving on, and `noise` added."""
    random = np.random.default_rng(0)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    room_x, room_y = picture.shape[1] / 1.08 - width, picture.shape[0] / 1.08 - height
    views = []
    for index in range(frames):
        progress = index / max(1, frames - 1)
        zoom = 1 + 0.08 * progress
        x, y = 0.1 * room_x + 0.25 * room_x * progress, 0.1 * room_y + 0.15 * room_y * progress
        # output pixel (u, v) shows picture point (x + u / zoom, y + v / zoom)
        matrix = np.array([[1 / zoom, 0, x], [0, 1 / zoom, y]], np.float32)
        view = cv2.warpAffine(picture, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        if ripple:
            phase = 0.8 * index
            shift_x = ripple * np.sin(columns / 13 + rows / 17 + phase) * np.cos(rows / 23 - 0.7 * phase)
            shift_y = ripple * np.cos(columns / 19 - rows / 11 + 1.3 * phase)
            view = cv2.remap(view, columns + shift_x, rows + shift_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        views.append(np.clip(view + random.normal(0, noise, view.shape), 0, 255) if noise else view)
    return views


def write_source(path: Path, views: list[np.ndarray]) -> None:
    settings = VideoSettings(codec="h264", crf=6)
    settings.check()
    writer = VideoWriter(path, settings, frame_rate=Fraction(RATE), time_base=Fraction(1, RATE))
    for index, view in enumerate(views):
        writer.write(np.asarray(view, np.float32) / 255, index)
    writer.close()


def decoded(path: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(pixels, right eye or None) of each frame; a two-view file gives both eyes."""
    with VideoReader(path, all_views=True) as reader:
        return [(frame.pixels, frame.right) for frame in reader.frames()]


def luma(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., :3] @ LUMA


@dataclass
class Quality:
    psnr: list[float]
    ssim: list[float]

    def cells(self) -> str:
        return (f"{np.mean(self.psnr):.1f} / {np.min(self.psnr):.1f} | "
                f"{np.mean(self.ssim):.3f} / {np.min(self.ssim):.3f}")


def quality(outputs: list[np.ndarray], references: list[np.ndarray]) -> Quality:
    if len(outputs) != len(references):
        raise SystemExit(f"{len(outputs)} frames decoded against {len(references)} reference frames")
    psnr, ssim = [], []
    for output, reference in zip(outputs, references):
        a, b = luma(output), luma(reference)
        psnr.append(10 * np.log10(1 / max(float(np.mean((a - b) ** 2)), 1e-10)))
        ssim.append(structural_similarity(a, b, data_range=1.0))
    return Quality(psnr, ssim)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli(*args: object) -> tuple[float, float]:
    """Run sbsconvert; (wall seconds, CPU seconds)."""
    started, used = time.perf_counter(), children_cpu()
    done = subprocess.run([sys.executable, "-m", "sbsconvert", *map(str, args), "--force", "-q"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"sbsconvert {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started, children_cpu() - used


def read_png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def output_pixels(layout: str, width: int, height: int) -> int:
    """Pixels per frame of the encoded output (both views of a spatial file)."""
    return (2 if layout in ("sbs", "spatial") else 1) * width * height


def measure_preset(name: str, clip: Path, disparity: Path, folder: Path, rate: list[str],
                   frames: int) -> dict[str, object]:
    preset = load_preset(name)
    layout = preset["format"]
    reference_folder = folder / f"{name}_reference"
    if not reference_folder.is_dir():  # the same for every rate tried
        cli(clip, "--disparity", disparity, "--preset", name, "--format", "sbs", "--frames-out", "--type", "png",
            "-o", reference_folder)
    references = [split(read_png(path), "sbs") for path in sorted(reference_folder.glob("*.png"))]
    out = folder / f"{name}.{'mov' if layout == 'spatial' else 'mp4'}"
    wall, cpu = cli(clip, "--disparity", disparity, "--preset", name, *rate, "-o", out)
    views = decoded(out)
    if layout == "spatial":
        eyes = [pixels for pixels, _ in views], [right for _, right in views]
    elif layout == "anaglyph":
        eyes = [pixels for pixels, _ in views], None
    else:
        eyes = tuple(zip(*(split(pixels, layout) for pixels, _ in views)))
    if layout == "anaglyph":
        measured = {"frame": quality(eyes[0], [compose(left, right, "anaglyph")[0] for left, right in references])}
    else:
        measured = {"left": quality(list(eyes[0]), [left for left, _ in references]),
                    "right": quality(list(eyes[1]), [right for _, right in references])}
    if layout == "hsbs":  # what squeezing each eye to half width costs before any encoding
        squeezed = [split(compose(left, right, "hsbs")[0], "hsbs")[0] for left, right in references]
        measured["left, unencoded"] = quality(squeezed, [left for left, _ in references])
    height, width = references[0][0].shape[:2]
    bits = out.stat().st_size * 8
    return {"measured": measured, "bits": bits, "wall": wall, "cpu": cpu,
            "bpp": bits / (frames * output_pixels(layout, width, height)), "layout": layout}


def baseline(codec: str, crf: int, sources: list[np.ndarray], path: Path) -> dict[str, object]:
    settings = VideoSettings(codec=codec, crf=crf)
    settings.check()
    started = time.perf_counter()
    writer = VideoWriter(path, settings, frame_rate=Fraction(RATE), time_base=Fraction(1, RATE))
    for index, pixels in enumerate(sources):
        writer.write(pixels, index)
    writer.close()
    seconds = time.perf_counter() - started
    height, width = sources[0].shape[:2]
    bits = path.stat().st_size * 8
    return {"measured": quality([pixels for pixels, _ in decoded(path)], sources), "bits": bits,
            "bpp": bits / (len(sources) * width * height), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--clips", nargs="+", choices=CLIPS, default=list(CLIPS))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--bits-per-pixel", type=float, nargs="*", default=[],
                        help="rates to try instead of each preset's own (as --bitrate for the output's size)")
    parser.add_argument("--crf", type=int, nargs="*", default=[], help="constant qualities to try instead")
    parser.add_argument("--keep", type=Path, help="keep the clips and outputs in this folder")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    seconds = args.frames / RATE
    print(f"device: {cpu_name()}, {os.cpu_count()} cores, PyAV {av.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}; {args.frames} frames {width}x{height} at {RATE} fps")
    print("| clip | encode | rate | bits/pixel | Mbit/s | size vs x265 crf 20 2D | eye | PSNR dB mean / min "
          "| SSIM mean / min | frames/s (CPU s/frame) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        for clip_name in args.clips:
            clip_folder = folder / clip_name
            clip_folder.mkdir(parents=True, exist_ok=True)
            clip, disparity = clip_folder / "source.mp4", clip_folder / "ramp.png"
            picture, ripple, noise = CLIPS[clip_name]
            write_source(clip, camera_move(picture(width, height), width, height, args.frames, ripple, noise))
            for stale in clip_folder.glob("*_reference"):  # an earlier run's, of another source
                shutil.rmtree(stale)
            cv2.imwrite(str(disparity), np.repeat(np.linspace(0, 255, height, dtype=np.uint8)[:, None], width, 1))
            sources = [pixels for pixels, _ in decoded(clip)]
            reference_bits = None
            for codec, crf in (("hevc", 20), ("h264", 18)):
                result = baseline(codec, crf, sources, clip_folder / f"2d_{codec}.mp4")
                reference_bits = reference_bits or result["bits"]
                print(f"| {clip_name} | 2D {codec} | crf {crf} | {result['bpp']:.3f} | "
                      f"{result['bits'] / seconds / 1e6:.1f} | {result['bits'] / reference_bits:.2f} | 2D | "
                      f"{result['measured'].cells()} | {args.frames / result['seconds']:.1f} (encode only) |", flush=True)
            for name in args.presets:
                layout = load_preset(name)["format"]
                rates = [("preset", [])]
                rates += [(f"{bpp} bits/pixel",
                           ["--bitrate", str(round(bpp * output_pixels(layout, width, height) * RATE))])
                          for bpp in args.bits_per_pixel]
                rates += [(f"crf {crf}", ["--crf", str(crf)]) for crf in args.crf]
                for label, rate in rates:
                    result = measure_preset(name, clip, disparity, clip_folder, rate, args.frames)
                    for eye, measured in result["measured"].items():
                        print(f"| {clip_name} | {name} ({result['layout']}) | {label} | {result['bpp']:.3f} | "
                              f"{result['bits'] / seconds / 1e6:.1f} | {result['bits'] / reference_bits:.2f} | {eye} | "
                              f"{measured.cells()} | {args.frames / result['wall']:.1f} "
                              f"({result['cpu'] / args.frames:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
