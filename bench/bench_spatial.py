"""Spatial video (MV-HEVC) against side by side: encode frame rate and file size on CPU.

    python bench/bench_spatial.py [--frames 30] [--size 1080p]

The same stereo pairs (the synthetic scene panning, right eye warped) are written as an SBS HEVC
video (one 2W x H frame per pair) and as a spatial video (two W x H eyes encoded by libx265 and
assembled into one two-view stream, then muxed with Apple's boxes). Both at the default quality
(crf 20), 8-bit. The share of the spatial time spent assembling the bitstream is reported apart,
and the spatial file is checked to decode into both views of every frame.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av


from bench_video import RATE, SIZES, panning
from bench_warp import cpu_name
from sbsconvert.disparity import Disparity, pixel_shift
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.hevc.mvhevc import MultiviewAssembler
from sbsconvert.layout import compose
from sbsconvert.video.encode import VideoSettings, VideoWriter
from sbsconvert.video.spatial import SpatialMetadata, SpatialVideoWriter


class TimedAssembler(MultiviewAssembler):
    seconds = 0.0

    def access_unit(self, left: bytes, right: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return super().access_unit(left, right)
        finally:
            TimedAssembler.seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", choices=list(SIZES), default="1080p")
    args = parser.parse_args()
    width, height = SIZES[args.size]
    engine = WarpEngine()
    pairs = []
    for view, values in panning(width, height, args.frames):
        disparity = Disparity(values)
        pair = engine.render(StereoRequest(view, disparity.values, pixel_shift(disparity, width, 3.0, 0.0)))
        pairs.append((pair.left, pair.right))
    settings = VideoSettings(codec="hevc")
    print(f"### Spatial vs SBS encode, {args.frames} frames of {width}x{height} per eye, libx265 crf 20 8-bit, "
          f"{cpu_name()}")
    print("| output | encode fps | of which bitstream assembly | file size |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        sbs = Path(folder) / "sbs.mp4"
        writer = VideoWriter(sbs, settings, frame_rate=Fraction(RATE), time_base=Fraction(1, RATE), layout="sbs")
        started = time.perf_counter()
        for index, (left, right) in enumerate(pairs):
            writer.write(compose(left, right, "sbs")[0], index)
        writer.close()
        sbs_seconds = time.perf_counter() - started
        print(f"| sbs ({2 * width}x{height}) | {args.frames / sbs_seconds:.2f} | - | {sbs.stat().st_size / 1e6:.2f} MB |")
        spatial = Path(folder) / "spatial.mp4"
        writer = SpatialVideoWriter(spatial, settings, frame_rate=Fraction(RATE), time_base=Fraction(1, RATE),
                                    metadata=SpatialMetadata(64.0, 60.0))
        writer._assembler = TimedAssembler()  # same work, timed
        started = time.perf_counter()
        for index, (left, right) in enumerate(pairs):
            writer.write_pair(left, right, index)
        writer.close()
        spatial_seconds = time.perf_counter() - started
        with av.open(str(spatial)) as container:  # a check, not timed: both views of every frame decode
            stream = container.streams.video[0]
            stream.codec_context.options = {"view_ids": "-1"}
            assert sum(1 for _ in container.decode(stream)) == 2 * args.frames
        share = TimedAssembler.seconds / spatial_seconds
        print(f"| spatial (2 x {width}x{height}) | {args.frames / spatial_seconds:.2f} | "
              f"{1000 * TimedAssembler.seconds / args.frames:.1f} ms/frame ({share:.1%}) | "
              f"{spatial.stat().st_size / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
