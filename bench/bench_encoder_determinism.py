"""Does libx264 encode the same frames to the same bytes every time? With its AVX-512 routines
it did not on an AVX-512 CPU; sbsconvert holds it to AVX2 there (video/encoders.py x264_params).

    python bench/bench_encoder_determinism.py [--runs 700] [--clip VIDEO]

Encodes 12 frames of 320x240 noise (the same frame objects each run) `--runs` times, with x264's
own CPU detection and with sbsconvert's options, and counts the different outputs (1 = deterministic).
With `--clip`, also the time and size of encoding that clip's frames both ways.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sbsconvert.video.encode import VideoSettings, encoder_options  # noqa: E402


def encode(frames: list[av.VideoFrame], options: dict[str, str], rate: int = 2) -> tuple[bytes, av.container.OutputContainer]:
    """The packets libx264 makes of `frames` at `rate` frames per second with `options`, and its
    (still open) container."""
    time_base = Fraction(1, rate * 6400)
    container = av.open(io.BytesIO(), "w", format="mp4")
    stream = container.add_stream("libx264", rate=rate, options=options)
    stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    stream.time_base = stream.codec_context.time_base = time_base
    packets = []
    for number, frame in enumerate(frames):
        frame.pts, frame.time_base = number * 6400, time_base
        packets += stream.encode(frame)
    packets += stream.encode(None)
    return b"".join(bytes(packet) for packet in packets), container


def outputs(frames: list[av.VideoFrame], options: dict[str, str], runs: int) -> collections.Counter[bytes]:
    """How often each output came out; each encoder is opened while the one before is still open
    (as a video's two eyes are), which makes the AVX-512 routines' garbage reads show more often."""
    counts: collections.Counter[bytes] = collections.Counter()
    previous = None
    for _ in range(runs):
        output, container = encode(frames, options)
        counts[hashlib.sha256(output).digest()] += 1
        previous = container  # noqa: F841 (kept open until the next encoder is)
    return counts


def timed(frames: list[av.VideoFrame], options: dict[str, str]) -> tuple[float, int]:
    """CPU seconds and bytes of one encode of `frames`."""
    cpu = time.process_time()
    output, container = encode(frames, options, rate=24)
    container.close()
    return time.process_time() - cpu, len(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=700)
    parser.add_argument("--clip", type=Path, help="a video whose frames are also encoded both ways, timed")
    args = parser.parse_args()
    ours = encoder_options(VideoSettings(), "libx264", None)
    variants = {"x264's own CPU detection": {key: value for key, value in ours.items() if key != "x264-params"},
                "sbsconvert's options": ours}
    print(f"sbsconvert's x264-params here: {ours.get('x264-params', '(none: this CPU has no AVX-512)')}")
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frames = [av.VideoFrame.from_ndarray(np.roll(noise, step, axis=1), format="rgb24").reformat(format="yuv420p")
              for step in range(12)]
    for name, options in variants.items():
        counts = outputs(frames, options, args.runs)
        print(f"{name}: {len(counts)} different outputs in {args.runs} runs (runs per output: "
              f"{sorted(counts.values(), reverse=True)})")
    if args.clip:
        with av.open(str(args.clip)) as container:
            clip = [frame.reformat(format="yuv420p") for frame in container.decode(video=0)]
        for name, options in variants.items():
            seconds, size = timed(clip, options)
            print(f"{name}: {len(clip)} frames of {args.clip.name}, {seconds:.2f} CPU s, {size:,} bytes of H.264")


if __name__ == "__main__":
    main()
