"""Spatial video (MV-HEVC) against side by side: encode frame rate, file size, and the bytes of
layer 1 (the right eye) against layer 0, for each --mvhevc-structure, on CPU.

    python bench/bench_spatial.py [--frames 30] [--size 1080p] [--scene synthetic|motorcycle]

The same stereo pairs (the synthetic scene panning, right eye warped) are written as an SBS HEVC
video (one 2W x H frame per pair) and as a spatial video (two W x H eyes encoded by libx265 and
assembled into one two-view stream, then muxed with Apple's boxes). Both at the default quality
(crf 20), 8-bit. The share of the spatial time spent assembling the bitstream is reported apart,
and the spatial file is checked to decode into both views of every frame. `--scene motorcycle`
pans over a real stereo pair instead (Middlebury 2014 "Motorcycle", shipped in scikit-image: real
texture and its real right eye), where what layer 1 costs is that of real content.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bench_video import RATE, SIZES, panning
from bench_warp import cpu_name
from sbsconvert.disparity import Disparity, pixel_shift
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.formats.hevc.mvhevc import MultiviewAssembler
from sbsconvert.formats.hevc.nal import length_prefixed_units
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


def motorcycle_pan(width: int, height: int, frames: int, step: int = 2):
    """(left, right) pairs of a pan over the Middlebury Motorcycle pair, scaled to cover the frame."""
    import cv2
    from skimage import data

    left, right = data.stereo_motorcycle()[:2]
    scale = max((width + step * frames) / left.shape[1], height / left.shape[0])
    size = (round(left.shape[1] * scale), round(left.shape[0] * scale))
    left, right = (cv2.resize(view, size, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255 for view in (left, right))
    for index in range(frames):
        window = slice(index * step, index * step + width)
        yield np.ascontiguousarray(left[:height, window]), np.ascontiguousarray(right[:height, window])


def warped_pan(width: int, height: int, frames: int):
    engine = WarpEngine()
    for view, values in panning(width, height, frames):
        disparity = Disparity(values)
        pair = engine.render(StereoRequest(view, disparity.values, pixel_shift(disparity, width, 3.0, 0.0)))
        yield pair.left, pair.right


def layer_bytes(path: Path) -> tuple[int, int]:
    """Bytes of layer 0's and layer 1's NAL units in the file's video samples (4-byte lengths)."""
    sizes = [0, 0]
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            for unit in length_prefixed_units(bytes(packet)):
                sizes[min(unit.layer_id, 1)] += len(unit.to_bytes())
    return sizes[0], sizes[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", choices=list(SIZES), default="1080p")
    parser.add_argument("--scene", choices=("synthetic", "motorcycle"), default="synthetic")
    args = parser.parse_args()
    width, height = SIZES[args.size]
    scene = motorcycle_pan if args.scene == "motorcycle" else warped_pan
    pairs = list(scene(width, height, args.frames))
    settings = VideoSettings(codec="hevc")
    print(f"### Spatial vs SBS encode, {args.frames} frames of {width}x{height} per eye ({args.scene}), libx265 crf 20 "
          f"8-bit, {cpu_name()}")
    print("| output | encode fps | of which bitstream assembly | file size | layer 1 / layer 0 bytes |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        sbs = Path(folder) / "sbs.mp4"
        writer = VideoWriter(sbs, settings, frame_rate=Fraction(RATE), time_base=Fraction(1, RATE), layout="sbs")
        started = time.perf_counter()
        for index, (left, right) in enumerate(pairs):
            writer.write(compose(left, right, "sbs")[0], index)
        writer.close()
        sbs_seconds = time.perf_counter() - started
        print(f"| sbs ({2 * width}x{height}) | {args.frames / sbs_seconds:.2f} | - | {sbs.stat().st_size / 1e6:.2f} MB | - |")
        for structure in ("apple", "independent"):
            spatial = Path(folder) / f"spatial_{structure}.mp4"
            writer = SpatialVideoWriter(spatial, settings, frame_rate=Fraction(RATE), time_base=Fraction(1, RATE),
                                        metadata=SpatialMetadata(64.0, 60.0, structure=structure))
            writer._assembler = TimedAssembler(independent=structure == "independent")  # same work, timed
            TimedAssembler.seconds = 0.0
            started = time.perf_counter()
            for index, (left, right) in enumerate(pairs):
                writer.write_pair(left, right, index)
            writer.close()
            spatial_seconds = time.perf_counter() - started
            with av.open(str(spatial)) as container:  # a check, not timed: both views of every frame decode
                stream = container.streams.video[0]
                stream.codec_context.options = {"view_ids": "-1"}
                assert sum(1 for _ in container.decode(stream)) == 2 * args.frames
            base, right_eye = layer_bytes(spatial)
            share = TimedAssembler.seconds / spatial_seconds
            print(f"| spatial, --mvhevc-structure {structure} (2 x {width}x{height}) | {args.frames / spatial_seconds:.2f} | "
                  f"{1000 * TimedAssembler.seconds / args.frames:.1f} ms/frame ({share:.1%}) | "
                  f"{spatial.stat().st_size / 1e6:.2f} MB | {right_eye / base:.2f} |")


if __name__ == "__main__":
    main()
