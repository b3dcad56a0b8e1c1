"""--cluster on a local Ray instance with 2 CPU workers: a folder of photos and clips, a long clip's
segments spread over the workers, a worker killed mid-task; outputs as a local run writes them. Jobs
run as a local run runs them: locked while converting, out of memory said in one line."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SAMPLES, run
from sbsconvert.core import Job
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.errors import SbsError
from sbsconvert.locks import lock_path
from test_locks import assert_two_runs_share_the_work, make_album
from test_segments import DISPARITY, assert_identical, long_clip
from test_video_timing import check_trimmed_packed_run, kept_progress, packed_clip  # noqa: F401 (a fixture)

ray = pytest.importorskip("ray")

SMALL_GPU_WIDTH = 1000  # the widest picture the simulated GPU has memory for


def on_small_gpu(render):
    """WarpEngine.render on a GPU that runs out of memory on pictures wider than SMALL_GPU_WIDTH."""
    def render_on_small_gpu(engine, request):
        if request.image.shape[1] > SMALL_GPU_WIDTH:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return render(engine, request)
    return render_on_small_gpu


def give_workers_a_small_gpu():
    """Ray runs this in each worker process as it starts (a patch in the test process does not reach them)."""
    WarpEngine.render = on_small_gpu(WarpEngine.render)


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local Ray instance for the module (its workers import this checkout, like the CLI, and
    this test module for their small GPU); yields its address, for other drivers."""
    before = os.environ.get("PYTHONPATH")
    here = Path(__file__).resolve().parent
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here.parent), str(here), before]))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             logging_level="ERROR", runtime_env={"worker_process_setup_hook": give_workers_a_small_gpu})
    yield ray.get_runtime_context().gcs_address
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
               "--type", "png", "--video-paint", "every-frame")
    assert run(clip, "-o", tmp_path / "one", "-q", *options)[0] == 0
    code, output = run(clip, "-o", tmp_path / "ray", "-v", "--segment-seconds", "3", "--cluster", "auto", "--workers", "2",
                       *options)
    assert code == 0, output
    assert output.count("converted by worker") == 4 and len(workers_named(output)) == 2
    assert_same_frames(tmp_path / "one", tmp_path / "ray")


def test_keyframe_painting_on_workers_equals_a_local_segmented_run(ray_cluster, tiny_sd, tmp_path):
    """--video-paint keyframes (the default): each segment paints from its own first frame on, so
    workers write what a local run in the same segments writes, byte for byte, and count alike."""
    from test_segments import cut_clip

    clip = cut_clip(tmp_path / "cut.mp4")
    options = ("--engine", "diffusion", "--model", tiny_sd, "--steps", "2", "--disparity", DISPARITY, "--frames-out",
               "--type", "png", "--segment-seconds", "3", "--json")
    code, local = run(clip, "-o", tmp_path / "local", "-q", *options)
    assert code == 0, local
    code, ray = run(clip, "-o", tmp_path / "ray", "-q", "--cluster", "auto", "--workers", "2", *options)
    assert code == 0, ray
    assert_same_frames(tmp_path / "local", tmp_path / "ray")
    counts = lambda output: {key: json.loads(output)["converted"][0][key] for key in ("hole_fill", "unet_calls")}
    assert counts(local) == counts(ray) and counts(local)["unet_calls"]["total"] > 0


def assert_same_frames(folder, other):
    one, two = sorted(folder.iterdir()), sorted(other.iterdir())
    assert len(one) == 24 and [p.name for p in one] == [p.name for p in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))


def test_packed_b_frames_in_segments_on_workers_write_each_frame_once(ray_cluster, tmp_path, kept_progress):
    """DivX packed B-frames cut into segments that workers decode from seeks: no frame lost or doubled."""
    clip = packed_clip(tmp_path / "divx.avi")
    check_trimmed_packed_run(tmp_path, clip, kept_progress, "--segment-seconds", "1", "--cluster", "auto", "--workers", "2")


def test_two_cluster_runs_on_one_folder_share_the_work(ray_cluster, tmp_path):
    """Two runs joining one cluster at once with --skip-existing, one worker each (both at work
    together): each photo converted once, by one run; what one did, the other skipped."""
    photos, maps = make_album(tmp_path, 6, (160, 107))
    assert_two_runs_share_the_work(photos, maps, tmp_path / "out", "--cluster", ray_cluster, "--workers", "1")


def test_out_of_memory_on_a_worker_gives_a_local_runs_advice(ray_cluster, tmp_path, monkeypatch):
    """The workers' GPU (simulated) is too small for the wide photo: the same one line as a local
    run on such a GPU, and the batch goes on."""
    album, maps = tmp_path / "album", tmp_path / "maps"
    album.mkdir()
    maps.mkdir()
    shutil.copy(SAMPLES / "synthetic.png", album)
    shutil.copy(SAMPLES / "disparity" / "synthetic.pfm", maps)
    chelsea = Image.open(SAMPLES / "chelsea.jpg")  # 451 px wide
    chelsea.resize((3 * chelsea.width, 3 * chelsea.height)).save(album / "wide.png")  # its map fits it still
    shutil.copy(SAMPLES / "disparity" / "chelsea.png", maps / "wide.png")
    options = ("--disparity", maps, "--json")
    with monkeypatch.context() as local:
        local.setattr(WarpEngine, "render", on_small_gpu(WarpEngine.render))
        code, local_output = run(album, "-o", tmp_path / "local", *options)
    assert code == 1
    code, ray_output = run(album, "-o", tmp_path / "ray", "--cluster", "auto", "--workers", "2", *options)
    assert code == 1, ray_output
    errors = [[line for line in output.splitlines() if line.startswith("error:")] for output in (local_output, ray_output)]
    assert errors[0] == [f"error: out of GPU memory while converting {album / 'wide.png'}; try a smaller input, "
                         "fewer --steps or --device cpu"]
    assert errors[1] == errors[0]
    assert sorted(path.name for path in (tmp_path / "ray").iterdir()) == ["synthetic_LR.png"]


def test_a_dead_runs_lock_beside_a_finished_output_is_cleared(ray_cluster, tmp_path):
    """Killed after publishing its output and before giving the lock back, a run leaves a lock
    behind; a cluster run with --skip-existing clears it, as a local one does."""
    photo, out = SAMPLES / "synthetic.png", tmp_path / "out.png"
    options = ("--disparity", SAMPLES / "disparity" / "synthetic.pfm", "-o", out)
    assert run(photo, *options, "-q")[0] == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(f"{dead.pid} {socket.gethostname()}\n")
    code, output = run(photo, *options, "--skip-existing", "--cluster", "auto", "--workers", "1")
    assert code == 0, output
    assert out.exists() and not lock_path(out).exists()


def test_a_long_clip_another_run_holds_is_skipped_before_its_segments_are_planned(ray_cluster, film, tmp_path):
    """The lock of a video job covers all its segments, as in a local run: the driver claims it."""
    out = tmp_path / "film_LR.mp4"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(out).write_text(f"{holder.pid} {socket.gethostname()}\n")
        code, output = run(film, "-o", out, "--disparity", DISPARITY, "--segment-seconds", "6", "--cluster", "auto",
                           "--workers", "2")
        assert code == 0, output
        assert f"skipped {film}: another sbsconvert (pid {holder.pid}) is converting it" in output
        assert sorted(path.name for path in tmp_path.iterdir()) == [lock_path(out).name]  # no output, no work folder
    finally:
        holder.kill()
        holder.wait()


def test_a_worker_stopped_by_rays_memory_monitor_fails_its_job_in_one_line(tmp_path):
    """Ray's memory monitor kills a task whose machine runs short and raises its own
    OutOfMemoryError (neither a task's error nor a lost actor): the job fails with one line."""
    import ray.exceptions

    from sbsconvert.cluster import WorkerPool

    class StoppedByRay:
        exceptions = ray.exceptions

        def get(self, _):
            raise ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on memory.")

    class Worker:
        class convert:  # noqa: N801 - an actor method's handle
            remote = staticmethod(lambda *args: None)

    pool = WorkerPool.__new__(WorkerPool)  # its calls alone: no cluster is started
    pool.ray, pool.actors, pool.idle = StoppedByRay(), [Worker()], __import__("queue").Queue()
    pool.idle.put(Worker())
    job = Job(tmp_path / "big.png", [tmp_path / "big_LR.png"])
    with pytest.raises(SbsError, match=r"^out of memory on a worker while converting .*big\.png: .* try a smaller"):
        pool.call("convert", job)
    assert pool.idle.qsize() == 1  # the worker is handed back


def test_flow_stabilised_segments_on_workers_match_a_one_piece_run(ray_cluster, film, tmp_path):
    """--temporal flow carries each segment's filter state in from the frames before it; on the
    workers the seams must not show either (the tolerance of the local segmented test)."""
    from test_video_depth import convert_frames, jittered_maps, right_eyes, write_map_folder

    maps = write_map_folder(tmp_path / "maps", jittered_maps(60))
    options = ("--disparity", maps, "--temporal", "flow")
    whole = convert_frames(film, tmp_path / "whole_LR", *options)
    code, output = run(film, "-o", tmp_path / "ray_LR", "-v", "--frames-out", "--divergence", "8", "--segment-seconds", "6",
                       "--cluster", "auto", "--workers", "2", *options)
    assert code == 0, output
    assert output.count("converted by worker") == 5 and len(workers_named(output)) == 2
    parts = right_eyes(tmp_path / "ray_LR")
    assert len(whole) == len(parts) == 60
    assert max(np.abs(a - b).max() for a, b in zip(whole, parts)) <= 2 / 255
