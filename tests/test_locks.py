"""Two runs on one folder share the work: each job is claimed with a lock file beside its output;
a job another live process holds is skipped (not failed), a dead process's lock is taken over."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from sbsconvert import locks
from sbsconvert.cli import main
from sbsconvert.locks import claim, lock_path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PHOTO, MAP = SAMPLES / "synthetic.png", SAMPLES / "disparity" / "synthetic.pfm"


def make_album(root, count, size=None):
    photos, maps = root / "photos", root / "maps"
    photos.mkdir()
    maps.mkdir()
    image = Image.open(SAMPLES / "chelsea.jpg")
    image = image.resize(size) if size else image
    for index in range(count):
        image.rotate(index * 7).save(photos / f"p{index:02d}.png")
        shutil.copy(SAMPLES / "disparity" / "chelsea.png", maps / f"p{index:02d}.png")
    return photos, maps


def test_two_runs_on_one_folder_share_the_work(tmp_path):
    """Both started at once with --skip-existing (how concurrent runs are meant to be started: a
    run started without it refuses to begin where outputs already exist)."""
    photos, maps = make_album(tmp_path, 6, (320, 214))
    assert_two_runs_share_the_work(photos, maps, tmp_path / "out")


def assert_two_runs_share_the_work(photos, maps, out, *options):
    """Run sbsconvert twice at once on the 6 photos of make_album: each is converted by one run and
    skipped by the other, and no lock is left."""
    command = [sys.executable, "-m", "sbsconvert", str(photos), "--disparity", str(maps), "-o", str(out), "-q",
               "--skip-existing", "--json", *options]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [stderr for _, stderr in results]
    summaries = [json.loads(stdout) for stdout, _ in results]
    converted = [{Path(entry["input"]).name for entry in summary["converted"]} for summary in summaries]
    assert all(summary["failed"] == [] for summary in summaries)
    assert converted[0].isdisjoint(converted[1]) and len(converted[0] | converted[1]) == 6  # each job done once
    for summary, others in zip(summaries, reversed(converted)):  # what one did, the other skipped
        assert {Path(entry["input"]).name for entry in summary["skipped"]} == others
    assert sorted(path.name for path in out.iterdir()) == [f"p{index:02d}_LR.png" for index in range(6)]  # no locks left


def test_a_job_held_by_a_live_process_is_skipped(tmp_path):
    out = tmp_path / "out.png"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(out).write_text(f"{holder.pid} {socket.gethostname()}\n")
        result = CliRunner().invoke(main, [str(PHOTO), "--disparity", str(MAP), "-o", str(out), "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["converted"] == summary["failed"] == []
        assert f"pid {holder.pid}" in summary["skipped"][0]["note"]
        assert not out.exists() and lock_path(out).read_text().startswith(str(holder.pid))  # left to its owner
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_process_lock_is_taken_over(tmp_path):
    out = tmp_path / "out.png"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(f"{dead.pid} {socket.gethostname()}\n")
    result = CliRunner().invoke(main, [str(PHOTO), "--disparity", str(MAP), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["converted"]) == 1
    assert out.exists() and not lock_path(out).exists()


def test_a_lock_that_names_no_owner_is_taken_over(tmp_path):
    """A lock left empty (its writer killed between creating and writing it, before locks were
    created with their owner in them) once read as "pid 0", which os.kill counts as alive: the job
    was skipped for good as held by "another sbsconvert (pid 0)"."""
    out = tmp_path / "out.png"
    lock_path(out).write_text("")
    result = CliRunner().invoke(main, [str(PHOTO), "--disparity", str(MAP), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["converted"]) == 1
    assert out.exists() and not lock_path(out).exists()


def test_a_lock_is_born_with_its_owner_in_it(tmp_path, monkeypatch):
    """Whatever moment a run is killed at, a lock that exists names its owner: the lock appears
    (by a hard link) only once the owner's line is written."""
    out = tmp_path / "out.png"
    seen = []
    real_link = os.link

    def link(source, target):
        seen.append(Path(source).read_text())  # what the lock will hold the moment it appears
        real_link(source, target)

    monkeypatch.setattr(locks.os, "link", link)
    with claim(out) as holder:
        assert holder is None and seen == [f"{os.getpid()} {socket.gethostname()}\n"]
        assert sorted(path.name for path in tmp_path.iterdir()) == [lock_path(out).name]  # no draft left


def test_a_finished_job_skipped_clears_its_dead_owner_lock(tmp_path):
    """Killed after publishing its output and before giving the lock back, a run leaves the lock
    beside a finished output; the rerun with --skip-existing removes it (a live owner's stays)."""
    out = tmp_path / "out.png"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    first = CliRunner().invoke(main, [str(PHOTO), "--disparity", str(MAP), "-o", str(out)])
    assert first.exit_code == 0, first.output
    lock_path(out).write_text(f"{dead.pid} {socket.gethostname()}\n")
    result = CliRunner().invoke(main, [str(PHOTO), "--disparity", str(MAP), "-o", str(out), "--skip-existing",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["skipped"]) == 1
    assert not lock_path(out).exists()
    lock_path(out).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # alive: not ours to remove
    assert CliRunner().invoke(main, [str(PHOTO), "--disparity", str(MAP), "-o", str(out), "--skip-existing"]).exit_code == 0
    assert lock_path(out).exists()


def test_claim_is_exclusive_and_released(tmp_path):
    out = tmp_path / "new" / "folder" / "out.png"
    with claim(out) as holder:
        assert holder is None and lock_path(out).read_text().split()[0] == str(os.getpid())
        with claim(out) as second:  # the same lock asked again: held (by this very process)
            assert second == f"pid {os.getpid()}"
    assert not lock_path(out).exists()
    assert not (tmp_path / "new").exists()  # the folders made for the lock alone are gone


@pytest.mark.parametrize("step", ["_create", "_release"])
def test_ctrl_c_while_a_lock_is_taken_or_given_back_leaves_no_lock(tmp_path, monkeypatch, step):
    """Ctrl-C landing between creating the lock and owning it, or between reading it and removing
    it, is held back until the lock's state is whole again: no lock is left behind."""
    output = tmp_path / "out.png"
    real = getattr(locks, step)

    def interrupted(path):
        os.kill(os.getpid(), signal.SIGINT)  # delivered at once unless held back
        return real(path)

    monkeypatch.setattr(locks, step, interrupted)
    with pytest.raises(KeyboardInterrupt):  # delivered once the lock's state is whole again
        with locks.claim(output) as holder:
            assert holder is None
    assert not locks.lock_path(output).exists()
