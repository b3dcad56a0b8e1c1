"""What telling videos by content costs a folder scan.

    python bench/bench_folder_scan.py [--files 500] [--big-mb 30] [--repeats 3]

A folder of photos' companions that no extension names as a photo or video: `--files` XMP
sidecars (2 kB each), one `--big-mb` file of random bytes (`.bin`: FFmpeg's worst case, it tries
every format on its first MB) and a TypeScript `.ts` file, beside as many JPEG photos and camera
RAW files (known by name: never probed) and one AVCHD transport stream (probed, taken). Each file FFmpeg is asked about is opened once; the best of `--repeats` scans is printed,
with the answers cleared between scans.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from sbsconvert.core import PassedOver
from sbsconvert.jobs import images_in_folder
from sbsconvert.media import forget_probed_videos


def build(folder: Path, files: int, big_mb: int) -> None:
    for index in range(files):
        (folder / f"IMG_{index:04d}.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/">' + "a" * 2000 + "</x:xmpmeta>")
        (folder / f"IMG_{index:04d}.jpg").write_bytes(b"\xff\xd8 not decoded by a scan")
        (folder / f"IMG_{index:04d}.CR2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + os.urandom(1000))
    (folder / "archive.bin").write_bytes(os.urandom(big_mb * 1_000_000))
    (folder / "app.ts").write_text("export const answer: number = 42;\n" * 100)
    with av.open(str(folder / "00001.MTS"), "w", format="mpegts", options={"mpegts_m2ts_mode": "1"}) as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        for index in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), index * 5, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--big-mb", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        build(folder, args.files, args.big_mb)
        best = float("inf")
        for _ in range(args.repeats):
            forget_probed_videos()
            skipped: list[PassedOver] = []
            started = time.perf_counter()
            found = images_in_folder(folder, recursive=False, passed_over=skipped)
            best = min(best, time.perf_counter() - started)
        probed = args.files + 3
        print(f"{len(found)} taken ({sum(path.suffix == '.MTS' for path in found)} by content), {len(skipped)} skipped; "
              f"scan {best * 1000:.0f} ms, {best * 1e6 / probed:.0f} us per probed file ({probed} probed)")


if __name__ == "__main__":
    main()
