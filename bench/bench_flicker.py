"""Flicker of per-frame depth: `sbsconvert eval VIDEO --maps CLEAN` on three clips, and the cost of
flow stabilisation per frame against the warp path's.

    python bench/bench_flicker.py [--skip-cost]
    python bench/bench_flicker.py --real DIR [--clips NAME ...]   (real clips, bench/real_clips.py)

Clips (made here, H.264 crf 18, with their clean per-frame maps as 16-bit PNG folders):
- clip: samples/clip.mp4 (the synthetic scene, fixed camera, changing light) and its one map;
- motorcycle-pan: the real Middlebury Motorcycle photo (samples/motorcycle.png) panned and slowly
  zoomed by a known motion, its true disparity moved by the same motion (real image content; the
  depth is exact for the photo, the motion a flat camera move);
- moving-disc: the synthetic scene with the disc moving across it and the box sliding (exact
  per-frame disparity from sbsconvert.synthetic).

With --real DIR: the real clips of bench/real_clips.py found in DIR, with their proxy maps as the
clean maps, each method at 0.5 and flow at REAL_STRENGTHS, and the shot starts the cut test finds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from sbsconvert.convert import ConvertSettings, stereo_request  # noqa: E402
from sbsconvert.decode import load_picture  # noqa: E402
from sbsconvert.disparity import Disparity, load_disparity_file, normalize  # noqa: E402
from sbsconvert.engines import create_engine  # noqa: E402
from sbsconvert.evaluate.flicker import evaluate_flicker, flicker_table  # noqa: E402
from sbsconvert.synthetic import Layer, default_layers, render_scene  # noqa: E402
from sbsconvert.video.temporal import FlowStabilizer, shot_starts  # noqa: E402
from sbsconvert.video.decode import open_frames  # noqa: E402
from real_clips import CLIPS, prepare  # noqa: E402
from sbsconvert.device import select_compute  # noqa: E402

FRAMES, RATE = 60, 30
REAL_STRENGTHS = (0.3, 0.7, 0.85)  # flow's strengths tried on the real clips besides 0.5


def write_clip(path: Path, images: list[np.ndarray], maps: list[np.ndarray]) -> tuple[Path, Path]:
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    folder = path.with_suffix("")
    folder.mkdir()
    for index, values in enumerate(maps, start=1):
        Image.fromarray(np.round(normalize(values) * 65535).astype(np.uint16)).save(folder / f"{index:04d}.png")
    return path, folder


def motorcycle_pan(folder: Path) -> tuple[Path, Path]:
    photo = load_picture(REPO / "samples" / "motorcycle.png").pixels[..., :3]
    truth = load_disparity_file(REPO / "samples" / "disparity" / "motorcycle.pfm", "pixels").values
    height, width = photo.shape[:2]
    out_w, out_h = width * 3 // 4 // 2 * 2, height * 3 // 4 // 2 * 2
    images, maps = [], []
    for t in range(FRAMES):  # a pan left to right with a slow zoom in: one affine motion per frame
        zoom = 1 + 0.15 * t / FRAMES
        shift_x = (width - out_w / zoom) * t / FRAMES
        matrix = np.float32([[1 / zoom, 0, shift_x], [0, 1 / zoom, (height - out_h / zoom) / 2]])
        warp = lambda image, flags: cv2.warpAffine(image, matrix, (out_w, out_h), flags=flags | cv2.WARP_INVERSE_MAP,
                                                   borderMode=cv2.BORDER_REFLECT)
        images.append(warp(photo, cv2.INTER_CUBIC))
        maps.append(warp(truth, cv2.INTER_LINEAR))
    return write_clip(folder / "motorcycle-pan.mp4", images, maps)


def moving_disc(folder: Path) -> tuple[Path, Path]:
    width, height = 320, 240
    images, maps = [], []
    for t in range(FRAMES):
        layers = default_layers(width, height)
        wall, floor, box, disc = layers
        dx_disc, dx_box = 2.0 * t - 60, -0.5 * t + 15
        moved = lambda layer, dx: Layer(lambda x, y, m=layer.mask: m(x - dx, y), layer.disparity,
                                        lambda x, y, s=layer.texture: s(x - dx, y))
        scene = render_scene(width, height, [wall, floor, moved(box, dx_box), moved(disc, dx_disc)])
        images.append(scene.left)
        maps.append(scene.disparity)
    return write_clip(folder / "moving-disc.mp4", images, maps)


def flow_cost(size: tuple[int, int], frames: int = 12) -> tuple[float, float]:
    """ms per frame of flow stabilisation and of the warp engine's render, on a panning synthetic scene."""
    width, height = size
    scene = render_scene(width + 4 * frames, height)
    disparity = normalize(scene.disparity)
    stabilizer, engine = FlowStabilizer(normalize_range=True), create_engine("warp", select_compute("cpu"), fill="background")
    settings = ConvertSettings()
    rng = np.random.default_rng(0)
    flow = render = 0.0
    for t in range(frames):
        pixels = np.ascontiguousarray(scene.left[:, 4 * t : 4 * t + width])
        values = np.ascontiguousarray(disparity[:, 4 * t : 4 * t + width]) * rng.uniform(0.8, 1.2)
        started = time.perf_counter()
        steady = stabilizer(pixels, Disparity(values.astype(np.float32)))
        flow += time.perf_counter() - started
        started = time.perf_counter()
        engine.render(stereo_request(pixels, steady, settings))
        render += time.perf_counter() - started
    return 1000 * flow / frames, 1000 * render / frames


def real_clips(folder: Path, names: list[str] | None) -> None:
    """Every method at 0.5 and flow at REAL_STRENGTHS on each real clip, one table row each."""
    engine = create_engine("warp", select_compute("cpu"), fill="background")
    print("| clip | frames | shot starts (frame) | method | strength | right eye PSNR (dB) | still flicker "
          "| x clean run's |\n|---|---|---|---|---|---|---|---|")
    for clip in CLIPS:
        if names and Path(clip.file).stem not in names or not clip.available(folder):
            continue
        with tempfile.TemporaryDirectory() as temp:
            video, maps = prepare(clip, folder, Path(temp))
            with open_frames(video) as reader:
                starts = shot_starts((number, frame.pixels) for number, frame in enumerate(reader.frames()))
            runs = [(["none", "ema", "flow"], 0.5), *((["flow"], strength) for strength in REAL_STRENGTHS)]
            for methods, strength in runs:
                scores, frames = evaluate_flicker(video, maps, methods, engine, strength=strength)
                for score in scores:
                    if score.method.startswith("clean") and strength != 0.5:
                        continue  # shown once
                    shown = "-" if score.method.startswith("clean") else f"{score.psnr:.2f}"
                    print(f"| {Path(clip.file).stem} {clip.width} px | {frames} | {' '.join(map(str, starts))} "
                          f"| {score.method} | {'-' if score.method.startswith('clean') or score.method == 'none' else strength} "
                          f"| {shown} | {score.still_flicker:.5f} | {score.ratio:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--real", type=Path, help="folder holding the real clips of bench/real_clips.py")
    parser.add_argument("--clips", nargs="+", help="with --real: only these (file names without .mp4)")
    arguments = parser.parse_args()
    if arguments.real:
        real_clips(arguments.real, arguments.clips)
        return
    engine = create_engine("warp", select_compute("cpu"), fill="background")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        clips = [(REPO / "samples" / "clip.mp4", REPO / "samples" / "disparity" / "clip.png"),
                 motorcycle_pan(folder), moving_disc(folder)]
        for video, maps in clips:
            scores, frames = evaluate_flicker(video, maps, ["none", "ema", "flow"], engine, strength=0.5)
            print(flicker_table(video, scores, frames))
    if not arguments.skip_cost:
        print("| size | flow stabilisation ms/frame | warp render ms/frame | share |\n|---|---|---|---|")
        for name, size in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
            flow, render = flow_cost(size)
            print(f"| {name} | {flow:.1f} | {render:.0f} | {100 * flow / render:.1f} % |")


if __name__ == "__main__":
    main()
