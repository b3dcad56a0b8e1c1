"""Segmented video, resume and Ray scale-out, measured with whole CLI runs in child processes.

    python bench/bench_segments.py [--seconds 60] [--rate 24] [--size 320x180] [--skip-ray] [--only-ray]

1. Overhead of segmenting: one piece against segments of 5, 10 and 30 s (time and file size).
2. Resume: a run killed (SIGKILL) once 90 % of its segments are done, then run again.
3. Ray: a batch (the clip in 10 s segments plus photos) on 1 and on 2 workers of a local instance.
The clip is a pan across the synthetic scene (H.264 with a keyframe every 2 s, AAC audio), with a
fixed disparity map, so the per-frame work is the warp engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from bench_warp import cpu_name
from sbsconvert.synthetic import render_scene

ROOT = Path(__file__).resolve().parent.parent
# One torch thread, as Ray workers run: on shared cores 2 threads mostly wait for each other.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def make_clip(path: Path, seconds: int, rate: int, width: int, height: int) -> None:
    frames = seconds * rate
    scene = render_scene(width + frames, height)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"crf": "18", "g": str(2 * rate)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=48000)
        for index in range(frames):
            image = np.ascontiguousarray(scene.left[:, index : index + width])
            frame = av.VideoFrame.from_ndarray(np.round(image * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        tone = (0.2 * np.sin(np.arange(48000 * seconds) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            block = av.AudioFrame.from_ndarray(np.stack([tone[start : start + 1024]] * 2), format="fltp", layout="stereo")
            block.sample_rate, block.pts = 48000, start
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    disparity = scene.disparity[:, :width]
    relative = (disparity - disparity.min()) / max(float(np.ptp(disparity)), 1e-6)
    cv2.imwrite(str(path.with_suffix(".png")), np.round(relative * 255).astype(np.uint8))


def cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "sbsconvert", *map(str, args), "--force", "-q"]


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a child run: on shared cores the CPU time is the
    steadier figure."""
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return time.perf_counter() - started, cpu


def done_segments(out: Path) -> tuple[int, int]:
    try:
        manifest = json.loads((out.parent / f".{out.name}.segments" / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0, 0
    return sum(entry["done"] for entry in manifest["segments"]), len(manifest["segments"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=24)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--only-ray", action="store_true")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="bench_segments_"))
    clip = folder / "clip.mp4"
    make_clip(clip, args.seconds, args.rate, width, height)
    disparity = clip.with_suffix(".png")
    print(f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"{args.seconds} s clip, {width}x{height}, {args.rate} fps ({args.seconds * args.rate} frames)")

    if not args.only_ray:
        measure_segments(folder, clip, disparity)
    if not args.skip_ray:
        measure_ray(folder, clip, disparity)
    shutil.rmtree(folder)


def measure_segments(folder: Path, clip: Path, disparity: Path) -> None:
    """One piece against segments (best of 3); then a run killed at 90 % and resumed."""
    print("\n| run | wall s | CPU s | output bytes |\n|---|---|---|---|")
    one_piece = None
    for segment in (None, 30, 10, 5):
        out = folder / f"out_{segment}.mp4"
        wall, cpu = min(timed(cli(clip, "--disparity", disparity, "-o", out, "--segment-seconds", segment or 10**6))
                        for _ in range(3))
        one_piece = one_piece or (wall, cpu, out.stat().st_size)
        label = "one piece" if segment is None else f"{segment} s segments"
        print(f"| {label} | {wall:.1f} ({wall / one_piece[0] - 1:+.1%}) | {cpu:.1f} ({cpu / one_piece[1] - 1:+.1%}) | "
              f"{out.stat().st_size} ({out.stat().st_size / one_piece[2] - 1:+.1%}) |")

    out = folder / "killed.mp4"
    command = cli(clip, "--disparity", disparity, "-o", out, "--segment-seconds", 5)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=ENV)
    while True:
        done, total = done_segments(out)
        if total and done >= 0.9 * total or process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = time.perf_counter() - started
    resume, resume_cpu = timed(command)
    print(f"\nresume: killed after {killed_after:.1f} s with {done} of {total} segments done; "
          f"the resumed run took {resume:.1f} s ({resume_cpu:.1f} s CPU)")



def measure_ray(folder: Path, clip: Path, disparity: Path) -> None:
    """A batch of the clip (in 10 s segments) and four photos on 1, then 2 workers."""
    album, maps = folder / "album", folder / "maps"
    album.mkdir()
    maps.mkdir()
    shutil.copy(clip, album / "clip.mp4")
    shutil.copy(disparity, maps / "clip.png")
    for name in ("synthetic", "motorcycle"):
        for copy in range(2):
            shutil.copy(ROOT / "samples" / f"{name}.png", album / f"{name}{copy}.png")
            shutil.copy(ROOT / "samples" / "disparity" / f"{name}.pfm", maps / f"{name}{copy}.pfm")
    print("\n| Ray workers | wall s (with Ray start) | batch s |\n|---|---|---|")
    for workers in (1, 2):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "sbsconvert", album, "--disparity", maps, "-o", folder / f"ray{workers}",
             "--segment-seconds", "10", "--cluster", "auto", "--workers", str(workers), "--force"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
        wall = time.perf_counter() - started
        batch = float(re.search(r"in ([\d.]+) s", result.stderr).group(1))
        print(f"| {workers} | {wall:.1f} | {batch:.1f} |")


if __name__ == "__main__":
    main()
