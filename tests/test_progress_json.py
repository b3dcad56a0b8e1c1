"""Scripts and logs: --json prints a valid summary even when the run is refused before it starts,
and progress written to a log (stderr not a terminal) is plain lines, never carriage returns."""

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from sbsconvert.cli import main
from sbsconvert.progress import LogProgress

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.mark.parametrize("args, code, reason", [
    (["missing.jpg"], 1, "no such file"),
    ([], 1, "no INPUT"),
    (["photo", "--force", "--skip-existing"], 1, "contradict"),
    (["photo", "--divergence", "99"], 2, "99"),  # refused by click's option check
    (["photo", "--no-such-option"], 2, "no-such-option"),
])
def test_json_summary_of_a_refused_run(tmp_path, args, code, reason):
    args = [str(SAMPLES / "synthetic.png") if arg == "photo" else arg for arg in args]
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "out.png"), "--json"])
    assert result.exit_code == code, result.output
    summary = json.loads(result.stdout)
    assert reason in summary["refused"] and reason in result.stderr
    assert summary["converted"] == summary["skipped"] == summary["failed"] == []
    assert not (tmp_path / "out.png").exists()


def test_json_summary_of_a_run_that_went_ahead_is_not_refused(tmp_path):
    result = CliRunner().invoke(main, [str(SAMPLES / "synthetic.png"), "--disparity", str(SAMPLES / "disparity" / "synthetic.pfm"),
                                       "-o", str(tmp_path / "out.png"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["refused"] is None and len(summary["converted"]) == 1


def test_log_progress_writes_a_plain_line_every_interval():
    ticks = iter([0.0, 1.0, 2.0, 5.5, 6.0, 11.0, 12.0])
    lines = []
    counter = LogProgress(10, desc="clip.mp4", unit="frame", interval=5.0, clock=lambda: next(ticks), write=lines.append)
    for _ in range(6):
        counter.update()
    # at 5.5 s: 3 frames done (0.55/s), 7 left -> 13 s; at 11 s: 5 done (0.45/s), 5 left -> 11 s
    assert lines == ["clip.mp4: 3/10 frames, 0.5 frames/s, 0:13 left", "clip.mp4: 5/10 frames, 0.5 frames/s, 0:11 left"]
    silent = LogProgress(None, desc="batch", unit="file", enabled=False, interval=0.0, write=lines.append)
    silent.update()
    assert len(lines) == 2


def test_progress_without_a_terminal_has_no_carriage_returns(tmp_path):
    """A folder run logged to a file: the batch and the clip report progress without a bar."""
    album, maps = tmp_path / "album", tmp_path / "maps"
    album.mkdir()
    maps.mkdir()
    (album / "a.png").write_bytes((SAMPLES / "synthetic.png").read_bytes())
    with av.open(str(album / "b.mkv"), "w") as container:  # Matroska: no frame count in the header
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 40, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    for name in ("a", "b"):
        (maps / f"{name}.pfm").write_bytes((SAMPLES / "disparity" / "synthetic.pfm").read_bytes())
    command = [sys.executable, "-m", "sbsconvert", str(album), "--disparity", str(maps)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "\r" not in finished.stderr and "\x1b" not in finished.stderr
    assert "done: 2 converted" in finished.stderr
