"""Video conversion against the codec floor, side by side in one run.

    python bench/bench_codec_floor.py [--frames 120] [--repeats 3] [--size 720x528] [--codec h264]

The clip is a synthetic pan with one given disparity map (no depth model), converted three ways,
interleaved and repeated so that other load on shared cores hits each alike (best of each):

- floor: decode each frame, place it beside itself (sbs) and encode it with the same writer and
  settings: what decoding plus encoding alone cost;
- sequential: `convert_video(..., pipelined=False)`, every stage in turn on one thread;
- pipelined: `convert_video(...)` as the CLI runs it.

`--profile` prints the top of a cProfile of one sequential run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from bench_video import panning, write_clip
from bench_warp import cpu_name
from sbsconvert.convert import ConvertSettings
from sbsconvert.core import Job
from sbsconvert.depth_sources import DisparityProvider
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.layout import compose
from sbsconvert.video.decode import VideoReader
from sbsconvert.video.encode import VideoSettings, VideoWriter
from sbsconvert.video.pipeline import convert_video


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (the encoder's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_clip(folder: Path, width: int, height: int, frames: int) -> tuple[Path, Path]:
    """A pan forwards then back (every frame differs, no scene cut) and the first frame's map."""
    views, maps = zip(*panning(width, height, max(2, frames // 2)))
    clip, disparity = folder / "clip.mp4", folder / "map.png"
    write_clip(clip, list(views) + list(views[::-1]), count=frames)
    cv2.imwrite(str(disparity), np.round(maps[0] * 255).astype(np.uint8))
    return clip, disparity


def codec_floor(clip: Path, out: Path, video: VideoSettings) -> None:
    with VideoReader(clip) as reader:
        writer = VideoWriter(out, video, frame_rate=reader.info.frame_rate, time_base=reader.info.time_base)
        for frame in reader.frames():
            writer.write(compose(frame.pixels, frame.pixels, "sbs")[0], frame.pts)
        writer.close()


def convert(clip: Path, disparity: Path, out: Path, video: VideoSettings, pipelined: bool) -> None:
    provider = DisparityProvider(disparity, "relative", "auto", lambda: None, print)
    convert_video(Job(clip, [out]), ConvertSettings(force=True), WarpEngine(), provider, video, progress=False,
                  pipelined=pipelined)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="720x528")
    parser.add_argument("--codec", default="h264")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    video = VideoSettings(codec=args.codec)
    print(f"device: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), PyAV {av.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip, disparity = make_clip(folder, width, height, args.frames)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(convert, clip, disparity, folder / "out.mp4", video, False)
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)
            return
        runs = {
            "codec floor (decode, frame beside itself, encode)": lambda out: codec_floor(clip, out, video),
            "sequential convert_video": lambda out: convert(clip, disparity, out, video, False),
            "pipelined convert_video": lambda out: convert(clip, disparity, out, video, True),
        }
        best = {name: float("inf") for name in runs}
        cpu = dict(best)
        for _ in range(args.repeats):
            for name, run in runs.items():
                started, used = time.perf_counter(), cpu_seconds()
                run(folder / "out.mp4")
                best[name] = min(best[name], time.perf_counter() - started)
                cpu[name] = min(cpu[name], cpu_seconds() - used)
    floor = best[next(iter(runs))]
    print(f"\n{args.frames} frames {width}x{height} -> {2 * width}x{height} sbs, {args.codec} crf default, "
          f"best of {args.repeats}, load average {os.getloadavg()[0]:.1f} at the end")
    print("| run | seconds | frames/s | x codec floor | CPU seconds (all threads) |")
    print("|---|---|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {args.frames / seconds:.1f} | {seconds / floor:.2f} | {cpu[name]:.2f} |")


if __name__ == "__main__":
    main()
