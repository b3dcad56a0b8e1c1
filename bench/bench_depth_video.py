"""Cost per frame of Video Depth Anything Small (`--depth-model vda-small`) at 518 px, beside
Depth Anything V2 Small's on the same frames in the same run (so a busy machine slows both alike).

    python bench/bench_depth_video.py [--device cpu|cuda] [--frames 1 4 8] [--repeats 1]

The weights are random (no hub here; the cost does not depend on them), saved as a checkpoint
file and loaded through sbsconvert's VideoDepthEstimator, the path the real one takes. A window of
T frames of a 720p video runs through its stream (preprocessing, network, stitching, and resizing
the maps back to the frame). A window of 32 frames yields 22 new frames, so a long video costs
about time(32) / 22 per frame; where 32 frames are not timed (a CPU), time(32) is extrapolated
from a line through the shorter windows (the per-frame stages dominate; the attention over the
frames is a small part).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench_depth import announced_compute, save_depth_anything_v2_small
from bench_warp import best_time
from sbsconvert.depth import DepthEstimator
from sbsconvert.depth_video import CHECKPOINT, OVERLAP, WINDOW, VideoDepthAnything, VideoDepthEstimator
from sbsconvert.synthetic import render_scene

NEW_PER_WINDOW = WINDOW - 2 - OVERLAP  # two key frames and the overlap are seen again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 4, 8], help="window lengths to time (at most 32)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    compute = announced_compute(args.device)
    scene = render_scene(1280 + 2 * max(args.frames), 720)
    video = [np.ascontiguousarray(scene.left[:, 2 * i : 2 * i + 1280]) for i in range(max(args.frames))]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / CHECKPOINT
        torch.save(VideoDepthAnything().state_dict(), checkpoint)
        estimator = VideoDepthEstimator(str(checkpoint), compute)
        reference = DepthEstimator(str(save_depth_anything_v2_small(Path(folder) / "da-v2")), compute)
    parameters = sum(p.numel() for p in estimator.model.parameters()) / 1e6
    network = tuple(estimator.prepare(video[0]).shape[1:])[::-1]
    print(f"Video Depth Anything Small architecture ({parameters:.1f} M parameters), random weights, "
          f"720p frames, network input {network[0]}x{network[1]}")
    reference(video[0])  # warm-up
    per_frame = best_time(lambda: reference(video[0]), args.repeats, compute.device)
    estimator(video[0])  # warm-up
    print("| model | window (frames) | seconds per window | ms per frame |")
    print("|---|---|---|---|")
    print(f"| Depth Anything V2 Small | 1 (per frame) | {per_frame:.2f} | {per_frame * 1000:.0f} |")
    timings = {}
    for count in args.frames:
        frames = video[:count]

        def run() -> None:
            stream = estimator.stream()
            done = [disparity for pixels in frames for disparity in stream.push(pixels)] + stream.finish()
            assert len(done) == len(frames)

        timings[count] = best_time(run, args.repeats, compute.device)
        print(f"| Video Depth Anything Small | {count} | {timings[count]:.2f} | {timings[count] / count * 1000:.0f} |")
    if len(timings) >= 2:
        counts = sorted(timings)
        slope, intercept = np.polyfit(counts, [timings[count] for count in counts], 1)
        full = timings.get(WINDOW, intercept + slope * WINDOW)
        print(f"window of {WINDOW}: {full:.1f} s{'' if WINDOW in timings else ' (extrapolated)'}; a long video "
              f"({NEW_PER_WINDOW} new frames per window): {full / NEW_PER_WINDOW * 1000:.0f} ms per frame, "
              f"{full / NEW_PER_WINDOW / per_frame:.2f} x Depth Anything V2 Small")


if __name__ == "__main__":
    main()
