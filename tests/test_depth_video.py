"""Video Depth Anything (sbsconvert.depth_video): the official checkpoint's keys, loading tiny random
checkpoints through the real path (folder, file, hub cache), the one-line errors, window stitching,
and video conversion in one piece and in segments."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run
from sbsconvert.depth import DepthEstimator, load_depth_model
from sbsconvert.depth_video import (CHECKPOINT, KEY_SLOT, OVERLAP, VIDEO_DEPTH_MODEL, WINDOW, VideoDepthAnything,
                                    VideoDepthConfig, VideoDepthEstimator, WindowStitcher, fit_scale_shift,
                                    is_video_depth_model)
from sbsconvert.device import select_compute
from sbsconvert.errors import SbsError
from sbsconvert.video.segments import LOOK_AHEAD_FRAMES
from sbsconvert.video.temporal import DEFAULT_LOOK_AHEAD
from test_depth_model import assert_offline_message, empty_hub_cache, offline  # noqa: F401 (fixtures)
from test_segments import long_clip

CPU = select_compute("cpu")
OFFICIAL_KEYS = Path(__file__).parent / "fixtures" / "video_depth_anything_vits_keys.txt"
# Small enough to run fast; the group norms of the temporal modules need multiples of 32 channels.
TINY = VideoDepthConfig(embed_dim=64, depth=4, grid=2, out_channels=(16, 32, 32, 64), features=32)


def save_tiny_vda(folder: Path, config: VideoDepthConfig = TINY) -> Path:
    torch.manual_seed(0)
    model = VideoDepthAnything(config).eval()
    with torch.no_grad():
        # The head ends in a ReLU: random weights can give zeros everywhere. A positive last layer
        # keeps the (meaningless but varying) prediction above zero.
        last = model.head.scratch.output_conv2[2]
        last.weight.abs_()
        last.bias.fill_(0.1)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / CHECKPOINT)
    return folder


@pytest.fixture(scope="module")
def tiny_vda(tmp_path_factory):
    return save_tiny_vda(tmp_path_factory.mktemp("vda") / "tiny")


def frame(seed=0, height=40, width=60):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def test_real_size_architecture_has_the_official_checkpoints_keys_and_shapes():
    # The fixture lists every tensor of the official vits model (as its module definitions build
    # it): name and shape, one per line.
    official = {name: tuple(map(int, shape)) for name, *shape in map(str.split, OFFICIAL_KEYS.read_text().splitlines())}
    ours = {name: tuple(tensor.shape) for name, tensor in VideoDepthAnything().state_dict().items()}
    assert len(official) == 351
    assert ours == official
    # and the architecture read back off those shapes is the Small one
    assert VideoDepthConfig.from_state_dict(VideoDepthAnything().state_dict()) == VideoDepthConfig()


def test_tiny_checkpoint_loads_from_folder_and_file(tiny_vda):
    saved = torch.load(tiny_vda / CHECKPOINT, weights_only=True)
    for name in (str(tiny_vda), str(tiny_vda / CHECKPOINT)):
        assert is_video_depth_model(name)
        estimator = load_depth_model(name, CPU, 56)
        assert isinstance(estimator, VideoDepthEstimator)
        loaded = estimator.model.state_dict()
        assert loaded.keys() == saved.keys()  # nothing missing, nothing left over
        assert all(torch.equal(loaded[key], saved[key]) for key in saved)
        disparity = estimator(frame())
        assert disparity.values.shape == (40, 60) and not disparity.absolute
        assert disparity.values.min() == 0.0 and disparity.values.max() == 1.0


def test_alias_and_hub_id_load_from_the_hub_cache_offline(tiny_vda, offline):
    snapshot = offline / "models--depth-anything--Video-Depth-Anything-Small" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / CHECKPOINT).write_bytes((tiny_vda / CHECKPOINT).read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    for name in ("vda-small", "VDA-Small", VIDEO_DEPTH_MODEL):
        estimator = load_depth_model(name, CPU, 56)
        assert isinstance(estimator, VideoDepthEstimator)
        assert estimator(frame()).values.shape == (40, 60)
    # any other name is still a transformers model
    assert not is_video_depth_model("depth-anything/Depth-Anything-V2-Small-hf")


@pytest.mark.parametrize("name", ["vda-small", VIDEO_DEPTH_MODEL])
def test_offline_without_cache_is_one_clear_line(offline, name):
    with pytest.raises(SbsError) as error:
        VideoDepthEstimator(name, CPU)
    assert_offline_message(error, VIDEO_DEPTH_MODEL)
    assert str(offline) in str(error.value)


def test_cli_offline_names_the_model_in_one_line(offline, tmp_path):
    photo = Path(__file__).resolve().parent.parent / "samples" / "chelsea.jpg"
    code, output = run(photo, "--depth-model", "vda-small", "-o", tmp_path / "out.jpg")
    assert code != 0 and output.strip().count("\n") == 0, output
    assert VIDEO_DEPTH_MODEL in output and "--disparity" in output
    assert not (tmp_path / "out.jpg").exists()


def damaged(folder: Path, change) -> Path:
    state = torch.load(folder / CHECKPOINT, weights_only=True)
    change(state)
    target = folder.parent / "damaged"
    target.mkdir(exist_ok=True)
    torch.save(state, target / CHECKPOINT)
    return target


@pytest.mark.parametrize("change, expected", [
    (lambda state: state.pop("head.scratch.layer2_rn.weight"), "1 missing keys (first: head.scratch.layer2_rn.weight)"),
    (lambda state: state.update(extra=torch.zeros(1)), "1 unexpected keys (first: extra)"),
    (lambda state: state.update({"head.projects.1.bias": torch.zeros(5)}), "1 keys of another shape (first: "
                                                                           "head.projects.1.bias (5,) not (32,))"),
    (lambda state: state.pop("pretrained.cls_token"), "not a Video Depth Anything checkpoint"),
])
def test_a_checkpoint_that_does_not_fit_is_one_line(tiny_vda, change, expected):
    folder = damaged(tiny_vda, change)
    with pytest.raises(SbsError, match="cannot load depth model") as error:
        VideoDepthEstimator(str(folder), CPU)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_missing_and_corrupt_checkpoints_are_one_line(tmp_path):
    with pytest.raises(SbsError, match="does not exist"):
        VideoDepthEstimator(str(tmp_path / "nothing.pth"), CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SbsError, match=f"cannot load depth model from folder .*holds no {CHECKPOINT}"):
        VideoDepthEstimator(str(tmp_path / "empty"), CPU)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SbsError, match="cannot load depth model from") as error:
        VideoDepthEstimator(str(tmp_path / "bad.pth"), CPU)
    assert "\n" not in str(error.value)


# ---- stitching ---------------------------------------------------------------------------------


def still_scene(frames: int) -> list[np.ndarray]:
    """Inverse depth of a slowly changing scene, one 6x8 map per frame."""
    y, x = np.mgrid[0:6, 0:8]
    return [(1.0 + 0.3 * x + 0.1 * y + 0.02 * index).astype(np.float64) for index in range(frames)]


class AffineWindows:
    """A predictor whose every window sees the truth at its own scale and shift (as a relative
    depth model does), recording the frames each window got."""

    def __init__(self, truth, rng):
        self.truth, self.rng, self.windows = truth, rng, []

    def __call__(self, items):
        self.windows.append(list(items))
        scale, shift = self.rng.uniform(0.2, 5.0), self.rng.uniform(-3.0, 3.0)
        return [scale * self.truth[index] + shift for index in items]


def stitch(stitcher, count):
    out = []
    for index in range(count):
        out += stitcher.push(index)
    return out + stitcher.finish()


@pytest.mark.parametrize("count", [1, 5, 31, 32, 33, 54, 55, 100])
def test_windows_at_other_scales_are_stitched_back_to_one(count):
    truth = still_scene(count)
    predict = AffineWindows(truth, np.random.default_rng(count))
    out = stitch(WindowStitcher(predict), count)
    assert len(out) == count
    # every frame is the truth at one scale and shift (the first window's)
    scale, shift = fit_scale_shift(truth, out)
    assert np.allclose(out, [scale * t + shift for t in truth], atol=1e-9)
    windows = predict.windows
    assert all(len(window) <= WINDOW for window in windows)
    assert windows[0] == list(range(min(count, WINDOW)))
    for previous, window in zip(windows, windows[1:]):
        # key frames: the stream's first frame and the previous window's KEY_SLOT frame; then
        # its last OVERLAP frames; then new ones, in order
        assert window[:2] == [0, previous[KEY_SLOT]]
        assert window[2 : 2 + OVERLAP] == previous[-OVERLAP:]
        assert window[2 + OVERLAP :] == list(range(previous[-1] + 1, previous[-1] + 1 + len(window) - 2 - OVERLAP))


def test_overlap_is_blended_without_a_step():
    # A still scene whose windows disagree in a way no scale and shift removes (each window's
    # error is a different pattern): a hard cut would jump by the whole disagreement at the seam.
    count = 54  # two windows
    truth = still_scene(1) * count
    bump = np.zeros((6, 8))
    bump[:, :4] = 1.0

    def predict(items):
        predict.calls += 1
        return [truth[0] + (0.5 * bump if predict.calls == 2 else 0) for _ in items]

    predict.calls = 0
    out = stitch(WindowStitcher(predict), count)
    steps = [np.abs(b - a).max() for a, b in zip(out, out[1:])]
    seam = 32 - OVERLAP  # the first overlap frame
    disagreement = np.abs(out[-1] - out[0]).max()
    assert disagreement > 0.2  # the windows do disagree
    assert max(steps) <= disagreement / (OVERLAP + 1) + 1e-9  # spread evenly over the overlap
    assert all(step < 1e-12 for step in steps[: seam - 1]) and all(step < 1e-12 for step in steps[seam + OVERLAP:])


def test_stitcher_rejects_a_key_slot_outside_the_new_frames():
    with pytest.raises(ValueError, match="key slot"):
        WindowStitcher(lambda items: items, window=8, overlap=2, key_slot=7)


# ---- videos ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # 72 frames at 8 fps, a keyframe every 8: --segment-seconds 6 cuts it at frame 48
    return long_clip(tmp_path_factory.mktemp("vda_clip") / "pan.mp4", 9, gop=8, rate=8)


def frames_of(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(folder.iterdir())]


def test_video_converts_end_to_end_and_in_segments(tiny_vda, clip, tmp_path):
    # The EMA smoother, whose look-ahead the count below reasons with (the flow filter looks at none).
    base = (clip, "--depth-model", tiny_vda, "--depth-resolution", "56", "--temporal", "ema", "--frames-out", "--type",
            "png", "-q")
    assert run(*base, "-o", tmp_path / "whole", "--segment-seconds", "1000")[0] == 0
    assert run(*base, "-o", tmp_path / "pieces", "--segment-seconds", "6")[0] == 0
    whole, pieces = frames_of(tmp_path / "whole"), frames_of(tmp_path / "pieces")
    assert len(whole) == len(pieces) == 72
    assert whole[0].shape == (48, 128, 3)  # side by side
    # The first segment reads its 48 frames and LOOK_AHEAD_FRAMES after them: 0-55. Its windows
    # match the one-piece run's while they lie inside that: the first (0-31) and the second (new
    # frames 32-53), whose frames are final up to 53 - OVERLAP = 45; the smoothing's look-ahead
    # then needs DEFAULT_LOOK_AHEAD frames more. So frames 0-41 are the same, bit for bit.
    second_window_end = WINDOW + (WINDOW - 2 - OVERLAP) - 1
    assert second_window_end <= 48 + LOOK_AHEAD_FRAMES - 1
    same = second_window_end - OVERLAP - DEFAULT_LOOK_AHEAD + 1
    assert same == 42
    # After that the first segment's last window is shorter, and the second segment's windows
    # start at its warm-up (frame 36) rather than on the one-piece run's grid: they differ.
    differing = [index for index, (a, b) in enumerate(zip(whole, pieces)) if not np.array_equal(a, b)]
    assert differing[0] == same


def test_photo_runs_on_one_frame(tiny_vda, tmp_path):
    photo = Path(__file__).resolve().parent.parent / "samples" / "chelsea.jpg"
    out = tmp_path / "out.png"
    code, output = run(photo, "--depth-model", f"{tiny_vda}/{CHECKPOINT}", "--depth-resolution", "56", "-o", out)
    assert code == 0, output
    with Image.open(photo) as source, Image.open(out) as pair:
        assert pair.size == (2 * source.width, source.height)


def test_other_depth_models_still_load_through_transformers(tmp_path):
    from test_depth_model import save_tiny_depth_anything

    folder = save_tiny_depth_anything(tmp_path / "da", "relative")
    assert not is_video_depth_model(str(folder))
    assert type(load_depth_model(str(folder), CPU)) is DepthEstimator
