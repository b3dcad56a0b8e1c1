"""The audio decision and the AAC re-encode, measured on clips made here with PyAV.

    python bench/bench_audio.py [--seconds 60]

1. The up-front decision (sbsconvert.video.audio.plan_audio: the muxer asked with the stream's
   first packets, a trial decode): its time for a short and a `--seconds` long source, which
   should not grow with the length (it reads only the first packets).
2. Re-encoding as AAC (decode, AAC encode, mux into MOV in memory, as StreamCopy does): CPU
   seconds per minute of audio, for Opus, FLAC and 16-bit PCM at 48 kHz stereo.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_warp import cpu_name  # noqa: E402
from sbsconvert.video.audio import AacEncoder, plan_audio  # noqa: E402
from test_video_audio import make_source  # noqa: E402

SOURCES = {"opus": ("web.webm", "libopus"), "flac": ("film.mkv", "flac"), "pcm": ("pcm.mkv", "pcm_s16le")}


def cpu_seconds(action) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def reencode(source: Path) -> None:
    with av.open(str(source)) as original, av.open(io.BytesIO(), "w", format="mov") as output:
        encoder = AacEncoder(original.streams.audio[0], output)
        for packet in original.demux(original.streams.audio[0]):
            if packet.dts is not None and packet.size:
                output.mux(encoder.encode(packet))
        output.mux(encoder.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    options = parser.parse_args()
    print(f"CPU: {cpu_name()}")
    with tempfile.TemporaryDirectory() as folder:
        print("| source | decision, 3 s source (ms) | decision, long source (ms) | AAC re-encode (CPU s per minute) |")
        print("|---|---|---|---|")
        for name, (file_name, codec) in SOURCES.items():
            short = make_source(Path(folder) / f"short_{file_name}", codec, seconds=3)
            long = make_source(Path(folder) / f"long_{file_name}", codec, seconds=options.seconds)
            decide = [min(cpu_seconds(lambda: plan_audio(path, "mov", ".mov", "auto")) for _ in range(5)) * 1000
                      for path in (short, long)]
            per_minute = cpu_seconds(lambda: reencode(long)) * 60 / options.seconds
            print(f"| {name} | {decide[0]:.1f} | {decide[1]:.1f} | {per_minute:.2f} |")


if __name__ == "__main__":
    main()
