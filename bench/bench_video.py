"""Video benchmarks: warp-engine frame rate, decode and encode cost, peak memory against clip
length, and flicker with and without temporal smoothing.

    python bench/bench_video.py [--frames 60] [--threads N] [--skip-speed] [--skip-memory]

Clips are made here from the synthetic scene (a camera panning across it). Peak memory is the
ru_maxrss of a whole `sbsconvert` CLI run in a child process, on a 10 s and a 60 s clip.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
import torch

from bench_warp import cpu_name
from sbsconvert.disparity import Disparity, normalize, pixel_shift
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.layout import compose
from sbsconvert.synthetic import render_scene
from sbsconvert.video.decode import VideoReader
from sbsconvert.video.encode import VideoSettings, VideoWriter
from sbsconvert.video.temporal import TemporalSmoother, flicker

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
RATE = 30


def panning(width: int, height: int, frames: int, step: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames of a pan across the synthetic scene with their relative disparity, made one at a time."""
    scene = render_scene(width + step * frames, height)
    disparity = normalize(scene.disparity)
    for i in range(frames):
        window = slice(i * step, i * step + width)
        yield np.ascontiguousarray(scene.left[:, window]), np.ascontiguousarray(disparity[:, window])


def write_clip(path: Path, frames: list[np.ndarray], *, count: int = 0, settings: VideoSettings | None = None) -> float:
    """Encode frames (or `count` repeats of a cycle of frames) with our writer; returns seconds."""
    writer = VideoWriter(path, settings or VideoSettings(), frame_rate=Fraction(RATE), time_base=Fraction(1, RATE))
    started = time.perf_counter()
    for index in range(count or len(frames)):
        writer.write(frames[index % len(frames)], index)
    writer.close()
    return time.perf_counter() - started


def bench_speed(frames: int) -> None:
    print(f"\n### Speed, {frames} frames, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| size | warp engine fps | smoothing ms/frame | decode fps | encode fps (SBS frame, h264 crf 18) |")
    print("|---|---|---|---|---|")
    engine = WarpEngine()
    for label, (width, height) in SIZES.items():
        smoother = TemporalSmoother()
        smooth_s = warp_s = 0.0
        pairs = []  # encoding cycles through a few distinct SBS frames
        for view, values in panning(width, height, frames):
            started = time.perf_counter()
            disparity = smoother(view, Disparity(values))
            smooth_s += time.perf_counter() - started
            started = time.perf_counter()
            pair = engine.render(StereoRequest(view, disparity.values, pixel_shift(disparity, width, 3.0, 0.0)))
            warp_s += time.perf_counter() - started
            if len(pairs) < 8:
                pairs.append(compose(pair.left, pair.right, "sbs")[0])
        with tempfile.TemporaryDirectory() as folder:
            clip = Path(folder) / "bench.mp4"
            encode_s = write_clip(clip, pairs, count=frames)
            started = time.perf_counter()
            with VideoReader(clip) as reader:
                decoded = sum(1 for _ in reader.frames())
            decode_s = time.perf_counter() - started
        assert decoded == frames
        print(f"| {label} {width}x{height} | {frames / warp_s:.1f} | {smooth_s / frames * 1000:.1f} | "
              f"{frames / decode_s:.1f} (of a {2 * width}x{height} SBS clip) | {frames / encode_s:.1f} |")


def bench_flicker() -> None:
    print("\n### Flicker (mean absolute frame-to-frame change of the right view, 0-1 scale), 320x240")
    width, height, frames = 320, 240, 30
    still = [render_scene(width, height).left] * frames
    truth = normalize(render_scene(width, height).disparity)
    rng = np.random.default_rng(0)
    jitter = [Disparity(normalize(truth + rng.normal(0, 0.03, truth.shape).astype(np.float32))) for _ in range(frames)]
    engine = WarpEngine()

    def right_flicker(views, disparities):
        return flicker(
            engine.render(StereoRequest(v, d.values, pixel_shift(d, width, 3.0, 0.0))).right for v, d in zip(views, disparities)
        )

    print("| clip | disparity | flicker |")
    print("|---|---|---|")
    print(f"| still | exact, constant | {right_flicker(still, [Disparity(truth)] * frames):.6f} |")
    print(f"| still | jittered per frame (sd 0.03), raw | {right_flicker(still, jitter):.6f} |")
    for weight in (0.6, 0.4, 0.25):
        smoother = TemporalSmoother(weight=weight)
        smoothed = [smoother(v, d) for v, d in zip(still, jitter)]
        print(f"| still | jittered, causal EMA weight {weight} | {right_flicker(still, smoothed):.6f} |")
    # Depth models also rescale whole frames: a few extreme pixels set each frame's min/max.
    spiky = []
    for d in jitter:
        values = d.values.copy()
        spots = rng.integers(0, values.size, 20)
        values.reshape(-1)[spots] = rng.uniform(-1.0, 2.0, spots.size)
        spiky.append(Disparity(normalize(values)))
    for label, maps in (("jittered", jitter), ("jittered + outliers setting min/max", spiky)):
        if maps is spiky:
            print(f"| still | {label}, raw | {right_flicker(still, maps):.6f} |")
        for name, smoother in (("causal EMA 0.4", TemporalSmoother(look_ahead=0)),
                               ("centred EMA 0.4, look-ahead 4", TemporalSmoother()),
                               ("centred + per-shot range", TemporalSmoother(normalize_range=True))):
            smoothed = [d for _, d, _ in smoother.smooth((None, v, d) for v, d in zip(still, maps))]
            print(f"| still | {label}, {name} | {right_flicker(still, smoothed):.6f} |")
    views, maps = zip(*panning(width, height, frames))
    print(f"| pan 2 px/frame | input frames themselves | {flicker(views):.6f} |")
    print(f"| pan 2 px/frame | exact per frame | {right_flicker(views, [Disparity(m) for m in maps]):.6f} |")


def peak_rss_of_cli(clip: Path, disparity: Path, out: Path) -> tuple[int, float]:
    """Peak resident memory (MB) and seconds of one CLI conversion in a child process."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "sbsconvert", str(clip), "--disparity", str(disparity), "-o", str(out), "-q", "--force"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"CLI failed: {process.stderr.read().decode()}")
    return usage.ru_maxrss // 1024, seconds  # ru_maxrss is in kB on Linux


def bench_memory() -> None:
    print(f"\n### Peak memory of a CLI run (320x240, 30 fps, sbs, h264), child ru_maxrss, {torch.get_num_threads()} threads")
    print("| clip | frames | peak RSS MB | seconds | frames/s |")
    print("|---|---|---|---|---|")
    width, height = 320, 240
    views, maps = zip(*panning(width, height, 60))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        disparity = folder / "map.png"
        cv2.imwrite(str(disparity), np.round(maps[0] * 255).astype(np.uint8))
        for seconds in (10, 60):
            clip = folder / f"clip{seconds}.mp4"
            # A pan forwards then back, so every frame differs and nothing is a scene cut.
            cycle = list(views) + list(views[::-1])
            write_clip(clip, cycle, count=seconds * RATE)
            rss, took = peak_rss_of_cli(clip, disparity, folder / f"out{seconds}.mp4")
            print(f"| {seconds} s | {seconds * RATE} | {rss} | {took:.1f} | {seconds * RATE / took:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads, here and in the CLI runs [default: torch's]. On "
                        "cores shared with other jobs, 1 avoids OpenMP threads waiting for each other")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device: {cpu_name()}, {os.cpu_count()} cores, PyAV {av.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.skip_speed:
        bench_speed(args.frames)
        bench_flicker()
    if not args.skip_memory:
        bench_memory()


if __name__ == "__main__":
    main()
