"""--cluster on a local Ray instance with 2 CPU workers: a folder of photos and clips, a long clip's
segments spread over the workers, a worker killed mid-task; outputs as a local run writes them."""

import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import SAMPLES, run
from sbsconvert.errors import SbsError
from sbsconvert.jobs import Job
from test_segments import DISPARITY, assert_identical, long_clip
from test_video_timing import check_trimmed_packed_run, kept_progress, packed_clip  # noqa: F401 (a fixture)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local Ray instance for the module (its workers import this checkout, like the CLI)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent), before]))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()
    if before is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    return long_clip(tmp_path_factory.mktemp("film") / "film.mp4", 30, gop=6)


def workers_named(output: str) -> set[str]:
    return set(re.findall(r"converted by (worker \d+@\S+)", output))


def test_folder_of_photos_and_clips_matches_a_local_run(ray_cluster, tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    for name in ("synthetic.png", "motorcycle.png", "clip.mp4"):
        shutil.copy(SAMPLES / name, album / name)
    options = ("--disparity", SAMPLES / "disparity", "--max-width", "160")
    assert run(album, "-o", tmp_path / "local", "-q", *options)[0] == 0
    code, output = run(album, "-o", tmp_path / "ray", "-v", "--cluster", "auto", "--workers", "2", *options)
    assert code == 0, output
    assert "cluster: 2 workers" in output and "done: 3 converted" in output
    assert len(workers_named(output)) == 2
    for name in ("synthetic_LR.png", "motorcycle_LR.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert_identical(tmp_path / "ray" / "clip_LR.mp4", tmp_path / "local" / "clip_LR.mp4")


@pytest.mark.parametrize("layout, suffix", [("sbs", ".mp4"), ("spatial", ".mov")])
def test_long_clip_segments_run_on_both_workers_and_join_like_a_local_run(ray_cluster, film, tmp_path, layout, suffix):
    options = ("--disparity", DISPARITY, "--segment-seconds", "6", "-f", layout)
    assert run(film, "-o", tmp_path / f"local{suffix}", "-q", *options)[0] == 0
    code, output = run(film, "-o", tmp_path / f"ray{suffix}", "-v", "--cluster", "auto", "--workers", "2", *options)
    assert code == 0, output
    assert output.count("converted by worker") == 5  # 30 s in 6 s segments
    assert len(workers_named(output)) == 2
    assert (tmp_path / f"ray{suffix}").read_bytes() == (tmp_path / f"local{suffix}").read_bytes()
    assert not list(tmp_path.glob(".*.segments"))


def _kill_one_busy_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker process seen converting a segment (Ray names it by the method)."""
    while not stop.is_set() and not killed:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::ConvertWorker.convert_part"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        time.sleep(0.01)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker process in /proc")
def test_a_worker_killed_mid_task_has_its_task_run_again(ray_cluster, film, tmp_path):
    options = ("--disparity", DISPARITY, "--segment-seconds", "6")
    assert run(film, "-o", tmp_path / "local.mp4", "-q", *options)[0] == 0
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_busy_worker, args=(stop, killed))
    killer.start()
    try:
        code, output = run(film, "-o", tmp_path / "ray.mp4", "-v", "--cluster", "auto", "--workers", "2", *options)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was seen at work"
    assert code == 0, output
    assert output.count("converted by worker") == 5
    assert_identical(tmp_path / "ray.mp4", tmp_path / "local.mp4")


def test_without_ray_cluster_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    code, output = run(SAMPLES / "synthetic.png", "--disparity", SAMPLES / "disparity" / "synthetic.pfm",
                       "-o", tmp_path / "x.jpg", "--cluster", "auto")
    assert code == 1
    assert output.strip() == 'error: --cluster runs on Ray, which is not installed: pip install "sbsconvert[cluster]"'
    assert not (tmp_path / "x.jpg").exists()


def test_workers_without_cluster_is_refused(tmp_path):
    code, output = run(SAMPLES / "synthetic.png", "-o", tmp_path / "x.jpg", "--workers", "2")
    assert code != 0 and "--workers sets the number of --cluster workers" in output


def test_a_worker_that_cannot_see_the_files_says_so_in_one_line(tmp_path):
    """A worker on another machine without the shared file system: the source, or the work folder
    the driver made for a video's segments, is missing there."""
    from sbsconvert.cluster import check_shared_files

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")
    check_shared_files(Job(photo, [tmp_path / "not yet made" / "photo_LR.png"]))  # a worker makes output folders
    with pytest.raises(SbsError, match=r"gone\.png: not found on worker machine .*shares$"):
        check_shared_files(Job(tmp_path / "gone.png", [tmp_path / "gone_LR.png"]))
    with pytest.raises(SbsError, match=r"\.film\.mp4\.segments: not found on worker machine"):
        check_shared_files(Job(photo, [tmp_path / ".film.mp4.segments" / "00001.0.npz"]), work_folder=True)


def test_diffusion_segments_on_workers_read_their_shots_anchor_like_one_piece(ray_cluster, tiny_sd, tmp_path):
    """The segments of a clip with a scene cut, spread over 2 workers, each recording its shot's
    anchor where it begins mid-shot: the frames equal a local one-piece run's, byte for byte."""
    from test_segments import cut_clip

    clip = cut_clip(tmp_path / "cut.mp4")
    options = ("--engine", "diffusion", "--model", tiny_sd, "--steps", "2", "--disparity", DISPARITY, "--frames-out",
               "--type", "png")
    assert run(clip, "-o", tmp_path / "one", "-q", *options)[0] == 0
    code, output = run(clip, "-o", tmp_path / "ray", "-v", "--segment-seconds", "3", "--cluster", "auto", "--workers", "2",
                       *options)
    assert code == 0, output
    assert output.count("converted by worker") == 4 and len(workers_named(output)) == 2
    one, ray = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "ray").iterdir())
    assert len(one) == 24 and [p.name for p in one] == [p.name for p in ray]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, ray))


def test_packed_b_frames_in_segments_on_workers_write_each_frame_once(ray_cluster, tmp_path, kept_progress):
    """DivX packed B-frames cut into segments that workers decode from seeks: no frame lost or doubled."""
    clip = packed_clip(tmp_path / "divx.avi")
    check_trimmed_packed_run(tmp_path, clip, kept_progress, "--segment-seconds", "1", "--cluster", "auto", "--workers", "2")
