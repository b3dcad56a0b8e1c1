"""The pipelined video path: same output as the sequential one, errors and Ctrl-C end every
thread and leave no output; the stage threads themselves (Ahead)."""

import threading
import time

import numpy as np
import pytest

from sbsconvert.convert import ConvertSettings
from sbsconvert.core import Job
from sbsconvert.disparity import Disparity, normalize
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.errors import SbsError
from sbsconvert.synthetic import render_scene
from sbsconvert.video.ahead import Ahead
from sbsconvert.video.encode import VideoSettings
from sbsconvert.video.pipeline import convert_video
from test_video import HEIGHT, WIDTH, decoded, make_clip

TRUTH = normalize(render_scene(WIDTH, HEIGHT).disparity)


def constant_disparity(source, picture):
    return Disparity(TRUTH)


def no_stage_threads():
    return not [thread for thread in threading.enumerate() if thread.name in ("decode", "stereo")]


def test_pipelined_output_is_the_sequential_output_byte_for_byte(tmp_path):
    clip = tmp_path / "pan.mp4"
    make_clip(clip, frames=16)
    outputs = {}
    for pipelined in (False, True):
        out = tmp_path / f"pan_{pipelined}_LR.mp4"
        result = convert_video(Job(clip, [out]), ConvertSettings(), WarpEngine(), constant_disparity, VideoSettings(),
                               progress=False, pipelined=pipelined)
        assert "16 frames" in result.details[0]
        outputs[pipelined] = out.read_bytes()
    assert outputs[True] == outputs[False]
    frames, times, _ = decoded(tmp_path / "pan_True_LR.mp4")
    assert len(frames) == 16 and times == sorted(times)
    assert no_stage_threads()


@pytest.mark.parametrize("failure", [SbsError("depth model failed"), KeyboardInterrupt()])
@pytest.mark.parametrize("where", ["disparity", "engine"])
def test_a_failure_mid_stream_reaches_the_caller_and_leaves_nothing(tmp_path, failure, where):
    clip = tmp_path / "pan.mp4"
    make_clip(clip, frames=12, audio=False)
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 6:
            raise failure
        return constant_disparity(*args) if where == "disparity" else render(*args)

    engine = WarpEngine()
    render = engine.render
    if where == "engine":
        engine.render = failing
    out = tmp_path / "pan_LR.mp4"
    with pytest.raises(type(failure)):
        convert_video(Job(clip, [out]), ConvertSettings(), engine,
                      failing if where == "disparity" else constant_disparity, VideoSettings(), progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pan.mp4"]  # no output, no temp file
    if not isinstance(failure, KeyboardInterrupt):
        assert no_stage_threads()  # Ctrl-C does not wait for the frame in hand
    assert len(calls) == 6  # the stream stopped at the failure


def test_ahead_keeps_order_and_stays_bounded():
    produced = []

    def numbers():
        for number in range(100):
            produced.append(number)
            yield number

    stop = threading.Event()
    stage = Ahead(numbers(), "test", stop, depth=2)
    reader = iter(stage)
    assert next(reader) == 0
    time.sleep(0.5)  # time for the worker to run ahead as far as it may
    assert len(produced) <= 4  # the item read, two queued, one waiting to be put
    assert list(reader) == list(range(1, 100))
    stage.join(5)


def test_stopping_an_ahead_ends_its_thread_and_closes_its_source():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield np.zeros(4)
        finally:
            closed.set()

    stop = threading.Event()
    stage = Ahead(endless(), "test", stop, depth=1)
    next(iter(stage))
    stop.set()
    stage.join(5)
    assert closed.is_set()
    assert not any(thread.name == "test" for thread in threading.enumerate())


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory):
    from test_depth_model import save_tiny_depth_anything

    return save_tiny_depth_anything(tmp_path_factory.mktemp("depth"), "relative")


def test_a_depth_batch_gives_each_frames_own_disparity(tiny_depth_model):
    from sbsconvert.depth import DepthEstimator
    from test_depth_model import CPU
    from test_video import scene_frames

    estimator = DepthEstimator(str(tiny_depth_model), CPU)
    frames = list(scene_frames(5, motion=7))
    batched = estimator.batch(frames)
    one_by_one = [estimator(frame) for frame in frames]
    assert len(batched) == 5
    for together, alone in zip(batched, one_by_one):
        assert together.values.shape == (HEIGHT, WIDTH)
        # Batched matrix products may round differently; a random tiny model's nearly flat output,
        # stretched to 0-1, shows it in a few pixels (measured: 4 of 6144, by at most 0.03).
        difference = np.abs(together.values - alone.values)
        assert (difference > 1e-4).mean() < 0.005 and difference.max() < 0.05
    assert not np.allclose(batched[0].values, batched[4].values, atol=1e-3)  # frames differ, and so do their maps


def test_batch_size_gives_the_same_video(tmp_path, tiny_depth_model):
    from click.testing import CliRunner

    from sbsconvert.cli import main

    clip = tmp_path / "pan.mp4"
    make_clip(clip, frames=7, audio=False)
    videos = []
    for batch in ("1", "3"):
        out = tmp_path / f"out{batch}.mp4"
        result = CliRunner().invoke(main, [str(clip), "--depth-model", str(tiny_depth_model), "--batch-size", batch,
                                           "-o", str(out), "-q"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        videos.append(decoded(out)[0])
    assert len(videos[0]) == len(videos[1]) == 7
    for one, three in zip(*videos):
        assert np.abs(one - three).max() <= 2 / 255  # batched convolutions may round differently


def test_ctrl_c_stops_a_pipelined_conversion_at_once_and_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    from test_video import disparity_map

    clip = tmp_path / "long.mp4"
    make_clip(clip, frames=200, width=192, height=128, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "sbsconvert", str(clip), "--disparity", str(disparity_map(tmp_path, 192, 128)),
               "-o", str(out / "long_LR.mp4")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(out.iterdir()):  # the temp output appears once frames are being written
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert time.monotonic() - interrupted < 10  # not after the remaining frames
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert list(out.iterdir()) == []  # no output, no temp file
