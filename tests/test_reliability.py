"""Interrupted batches, resuming, full disks, memory errors and the machine-readable summary."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sbsconvert.batch import JobResult, Reporter, run_batch
from sbsconvert.cli import main
from sbsconvert.device import memory_guard
from sbsconvert.errors import SbsError
from sbsconvert.jobs import Job
from sbsconvert.output import temp_prefix, write_image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ALBUM_SIZE = 16


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> tuple[Path, Path]:
    """Photos slow enough (~0.3 s each) that a signal lands in the middle of the batch."""
    root = tmp_path_factory.mktemp("album")
    photos, maps = root / "photos", root / "maps"
    photos.mkdir()
    maps.mkdir()
    photo = Image.open(SAMPLES / "chelsea.jpg").resize((900, 600))
    for index in range(ALBUM_SIZE):
        photo.rotate(index * 7).save(photos / f"p{index:02d}.png")
        shutil.copy(SAMPLES / "disparity" / "chelsea.png", maps / f"p{index:02d}.png")
    return photos, maps


def start(photos: Path, maps: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sbsconvert", str(photos), "--disparity", str(maps), "-o", str(out), "-q", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished_outputs(out: Path) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime_ns) of every published output."""
    if not out.exists():
        return {}
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir() if not p.name.startswith(".")}


def interrupt_midway(process: subprocess.Popen, out: Path, sig: int) -> None:
    deadline = time.monotonic() + 120
    while len(finished_outputs(out)) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the batch did not start writing"
        time.sleep(0.01)
    process.send_signal(sig)
    process.communicate(timeout=60)


def assert_complete(out: Path) -> None:
    for path in out.iterdir():
        assert not path.name.startswith("."), f"temp file left behind: {path.name}"
        with Image.open(path) as image:
            image.load()  # a truncated PNG fails here
            assert image.size == (1800, 600)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_batch_resumes_without_redoing_work(album, tmp_path, sig):
    photos, maps = album
    out = tmp_path / "out"
    process = start(photos, maps, out)
    interrupt_midway(process, out, sig)
    assert process.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    done_before = finished_outputs(out)
    assert 2 <= len(done_before) < ALBUM_SIZE, "the signal should land in the middle of the batch"
    if sig == signal.SIGINT:
        assert_complete(out)  # Ctrl-C cleans up after itself; SIGKILL cannot, the rerun does

    again = start(photos, maps, out, "--skip-existing", "--json")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    summary = json.loads(stdout)
    assert len(summary["skipped"]) == len(done_before)
    assert len(summary["converted"]) == ALBUM_SIZE - len(done_before)
    assert summary["failed"] == [] and summary["interrupted"] is False
    after = finished_outputs(out)
    assert len(after) == ALBUM_SIZE
    assert {name: after[name] for name in done_before} == done_before  # not rewritten
    assert_complete(out)


def test_rerun_without_skip_existing_refuses_before_any_work(album, tmp_path):
    photos, maps = album
    out = tmp_path / "out"
    out.mkdir()
    (out / "p05_LR.png").write_bytes(b"done earlier")
    result = CliRunner().invoke(main, [str(photos), "--disparity", str(maps), "-o", str(out)])
    assert result.exit_code == 1
    assert "p05_LR.png already exists" in result.stderr and "--skip-existing" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["p05_LR.png"]


def test_lr_pair_half_done_writes_only_the_missing_eye(tmp_path):
    photo, disparity = SAMPLES / "synthetic.png", SAMPLES / "disparity" / "synthetic.pfm"
    left = tmp_path / "s_L.png"
    left.write_bytes(b"finished by an earlier run")
    result = CliRunner().invoke(main, [str(photo), "--disparity", str(disparity), "-f", "lr-pair",
                                       "-o", str(tmp_path / "s.png"), "--skip-existing"])
    assert result.exit_code == 0, result.output
    assert left.read_bytes() == b"finished by an earlier run"
    assert Image.open(tmp_path / "s_R.png").size == (320, 240)


def test_json_summary_lists_converted_skipped_and_failed(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(SAMPLES / "synthetic.png", album / f"{name}.png")
    (album / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_LR.png").write_bytes(b"kept")
    maps = tmp_path / "maps"
    maps.mkdir()
    for name in ("a", "b", "c", "bad"):
        shutil.copy(SAMPLES / "disparity" / "synthetic.pfm", maps / f"{name}.pfm")
    result = CliRunner().invoke(main, [str(album), "--disparity", str(maps), "-o", str(out), "--skip-existing", "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert [Path(entry["input"]).name for entry in summary["converted"]] == ["a.png", "c.png"]
    assert [Path(entry["input"]).name for entry in summary["skipped"]] == ["b.png"]
    assert [Path(entry["input"]).name for entry in summary["failed"]] == ["bad.png"]
    assert "not a readable image" in summary["failed"][0]["error"]
    assert all(entry["seconds"] >= 0 for entry in summary["converted"])
    assert "done: 2 converted, 1 skipped, 1 failed" in result.stderr


def test_verbose_prints_time_per_stage_and_quiet_prints_nothing(tmp_path):
    args = [str(SAMPLES / "synthetic.png"), "--disparity", str(SAMPLES / "disparity" / "synthetic.pfm")]
    verbose = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "v.png"), "--verbose"])
    assert verbose.exit_code == 0
    assert "synthetic.png: decode" in verbose.stderr and "warp" in verbose.stderr and "write" in verbose.stderr
    normal = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "n.png")])
    assert "decode" not in normal.stderr and "wrote" in normal.stderr
    quiet = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "q.png"), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""


def _limit_file_size() -> None:
    # A disk that fills up mid-write: writes past 20 kB fail with EFBIG instead of killing us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_full_disk_leaves_no_partial_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "sbsconvert", str(SAMPLES / "chelsea.jpg"), "--disparity",
               str(SAMPLES / "disparity" / "chelsea.png"), "-o", str(out / "c.png")]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: cannot write {out / 'c.png'}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "photo_LR.png"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{temp_prefix(target, int(dead.stdout))}abc.part.png"
    live = tmp_path / f"{temp_prefix(target, os.getppid())}xyz.part.png"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    write_image(np.zeros((4, 4, 3), np.float32), target, force=False)
    assert target.exists() and not stale.exists() and live.exists()


@pytest.mark.parametrize(
    "error, words",
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of GPU memory"),
        (RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"), "out of GPU memory"),
        (MemoryError(), "out of memory"),
    ],
)
def test_memory_errors_become_one_line_with_advice(error, words):
    with pytest.raises(SbsError, match=words) as caught:
        with memory_guard("converting photo.jpg"):
            raise error
    assert "photo.jpg" in str(caught.value) and "try" in str(caught.value)


def test_torch_running_out_of_host_memory_becomes_one_line():
    """torch's CPU allocator says "DefaultCPUAllocator: can't allocate memory", without "out of memory"."""
    with pytest.raises(SbsError, match="^out of memory while converting photo.jpg; try a smaller input"):
        with memory_guard("converting photo.jpg"):
            torch.empty(2**50, dtype=torch.uint8)  # a petabyte: refused at once, nothing is allocated


def test_other_runtime_errors_are_not_mistaken_for_memory():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with memory_guard("converting photo.jpg"):
            raise RuntimeError("shape mismatch")


def test_out_of_memory_fails_one_job_and_the_batch_goes_on(tmp_path):
    jobs = [Job(tmp_path / f"{name}.png", [tmp_path / f"{name}_LR.png"]) for name in ("big", "small")]

    def convert_one(job):
        if job.source.stem == "big":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return JobResult()

    summary = run_batch(jobs, convert_one, Reporter(0), skip_existing=False)
    assert [outcome.status for outcome in summary.outcomes] == ["failed", "converted"]
    assert "out of GPU memory" in summary.outcomes[0].message


def test_a_model_that_cannot_load_stops_the_batch_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    album = tmp_path / "album"
    album.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(SAMPLES / "chelsea.jpg", album / f"{name}.jpg")
    missing_model = tmp_path / "no-such-model"
    result = CliRunner().invoke(main, [str(album), "--depth-source", "model", "--depth-model", str(missing_model),
                                       "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-such-model" in errors[0]
    summary = json.loads(result.stdout)
    assert summary["stopped"] is True and len(summary["failed"]) == 1 and summary["converted"] == []
    assert not (tmp_path / "out").exists()
