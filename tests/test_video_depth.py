"""Per-frame depth for videos (a folder of maps, a depth video, RGB+depth frames) reaching the right
frames, and motion-compensated stabilisation (--temporal flow) of per-frame disparity."""

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from conftest import run
from sbsconvert.disparity import Disparity
from sbsconvert.synthetic import smooth_texture
from sbsconvert.video.temporal import FlowStabilizer, make_smoother
from test_segments import long_clip
from test_video import make_clip

WIDTH, HEIGHT, FRAMES = 64, 48, 8


def map_images(count, odd=None, width=WIDTH, height=HEIGHT):
    """Per-frame maps: a left-to-right ramp (near on the right); frame `odd` has the ramp reversed."""
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return [ramp[:, ::-1].copy() if index == odd else ramp for index in range(count)]


def write_map_folder(folder, maps):
    folder.mkdir()
    for index, values in enumerate(maps, start=1):  # frame1 ... frame8: natural order, not text order
        Image.fromarray(np.round(values * 65535).astype(np.uint16)).save(folder / f"frame{index}.png")
    return folder


def write_depth_video(path, maps, codec="ffv1", pix_fmt="gray16le"):
    """A grey video of `maps` (frames in 0-1), 16-bit lossless by default; or, with an RGB pix_fmt,
    a lossless colour video of `maps` (HxWx3)."""
    rate = 30
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options={"crf": "0"} if codec == "libx264" else {})
        stream.width, stream.height, stream.pix_fmt = maps[0].shape[1], maps[0].shape[0], pix_fmt
        deep = pix_fmt == "gray16le"
        for index, values in enumerate(maps):
            pixels = np.round(values * (65535 if deep else 255)).astype(np.uint16 if deep else np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="gray16le" if deep else "rgb24" if pixels.ndim == 3 else "gray")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            container.mux(stream.encode(frame.reformat(format=pix_fmt)))
        container.mux(stream.encode(None))
    return path


def right_eyes(folder):
    """The right halves of a --frames-out folder's side-by-side frames, in order."""
    frames = sorted(folder.iterdir())
    return [np.asarray(Image.open(path), np.float32)[:, WIDTH:] / 255 for path in frames]


def changed_frames(a, b):
    return [index for index, (x, y) in enumerate(zip(a, b)) if np.abs(x - y).max() > 2 / 255]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path, frames=FRAMES, width=WIDTH, height=HEIGHT, motion=0, audio=False)
    return path


def convert_frames(clip, out, *options):
    code, output = run(clip, "-o", out, "--frames-out", "--temporal", "none", "--divergence", "8", "-q", *options)
    assert code == 0, output
    return right_eyes(out)


@pytest.mark.parametrize("source", ["folder", "ffv1", "h264"])
def test_per_frame_maps_reach_their_own_frame_only(clip, tmp_path, source):
    def maps_for(name, odd):
        images = map_images(FRAMES, odd)
        if source == "folder":
            return write_map_folder(tmp_path / name, images)
        if source == "ffv1":
            return write_depth_video(tmp_path / f"{name}.mkv", images)
        return write_depth_video(tmp_path / f"{name}.mp4", images, "libx264", "yuv420p")

    plain = convert_frames(clip, tmp_path / "plain_LR", "--disparity", maps_for("plain", None))
    odd = convert_frames(clip, tmp_path / "odd_LR", "--disparity", maps_for("odd", 5))
    assert changed_frames(plain, odd) == [5]


def test_rgbd_frames_take_their_depth_half(tmp_path):
    maps = map_images(FRAMES, odd=3)
    colour = [np.full((HEIGHT, WIDTH, 3), 0.5, np.float32) + 0.3 * np.sin(np.arange(WIDTH) / 3)[None, :, None]
              for _ in maps]
    def packed(depths):
        return [np.concatenate([c, np.repeat(d[..., None], 3, axis=2)], axis=1) for c, d in zip(colour, depths)]
    # Lossless (FFV1 RGB): a lossy codec would spread the odd frame's change to its neighbours.
    odd_clip = write_depth_video(tmp_path / "odd.mkv", packed(maps), pix_fmt="bgr0")
    plain_clip = write_depth_video(tmp_path / "plain.mkv", packed(map_images(FRAMES)), pix_fmt="bgr0")
    plain = convert_frames(plain_clip, tmp_path / "plain_LR", "--input-layout", "rgbd")
    odd = convert_frames(odd_clip, tmp_path / "odd_LR", "--input-layout", "rgbd")
    assert plain[0].shape == (HEIGHT, WIDTH, 3)  # the colour half, made stereo
    assert changed_frames(plain, odd) == [3]


def test_a_map_count_that_is_not_the_frame_count_is_one_line(clip, tmp_path):
    maps = write_map_folder(tmp_path / "maps", map_images(FRAMES - 1))
    code, output = run(clip, "-o", tmp_path / "out.mp4", "--disparity", maps)
    assert code != 0
    assert output.strip().splitlines()[-1] == f"error: {maps}: 7 maps for the 8 frames of clip.mp4; " \
        "per-frame depth needs exactly one map per frame"
    assert not (tmp_path / "out.mp4").exists()


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    return long_clip(tmp_path_factory.mktemp("film") / "film.mp4", 30, gop=6)  # 60 frames at 2 fps, 64x48


def test_trimmed_thinned_segmented_runs_give_each_frame_its_own_map(film, tmp_path):
    plain = write_map_folder(tmp_path / "plain", map_images(60))
    odd = write_map_folder(tmp_path / "odd", map_images(60, odd=40))  # shown at 20 s
    options = ("--start", "10", "--max-fps", "1", "--segment-seconds", "4")  # source frames 20, 22, ... 58
    a = convert_frames(film, tmp_path / "a_LR", "--disparity", plain, *options)
    b = convert_frames(film, tmp_path / "b_LR", "--disparity", odd, *options)
    assert len(a) == 20 and changed_frames(a, b) == [10]


def jittered_maps(count, seed=0):
    """Per-frame maps as a per-frame depth model gives them: the true ramp, rescaled and shifted
    differently on every frame, plus pixel noise."""
    rng = np.random.default_rng(seed)
    ramp = map_images(1)[0]
    return [np.clip(rng.uniform(0.7, 1.0) * ramp + rng.uniform(0, 0.3) + rng.normal(0, 0.02, ramp.shape), 0, 1)
            for _ in range(count)]


def test_flow_stabilisation_in_segments_matches_a_one_piece_run(film, tmp_path):
    maps = write_map_folder(tmp_path / "maps", jittered_maps(60))
    whole = convert_frames(film, tmp_path / "whole_LR", "--disparity", maps, "--temporal", "flow")
    parts = convert_frames(film, tmp_path / "parts_LR", "--disparity", maps, "--temporal", "flow",
                           "--segment-seconds", "6")
    plain = convert_frames(film, tmp_path / "plain_LR", "--disparity", maps)  # --temporal none
    assert len(whole) == len(parts) == 60
    assert changed_frames(whole, plain)  # the filter acts...
    assert max(np.abs(a - b).max() for a, b in zip(whole, parts)) <= 2 / 255  # ...and seams do not show


def moving_square(count=20, step=3, seed=0):
    """A textured square moving right over a textured still background: frames, true disparity
    (background 0.2, square 0.8), and per-frame maps with a per-frame scale and offset."""
    y, x = np.mgrid[0:96, 0:128].astype(float)
    background = smooth_texture(1, (0.5, 0.5, 0.6), 9)(x, y).astype(np.float32)
    square = smooth_texture(3, (0.8, 0.3, 0.3), 7)
    rng = np.random.default_rng(seed)
    frames, maps = [], []
    for t in range(count):
        image, left = background.copy(), 20 + step * t
        image[30:60, left : left + 30] = square(x[30:60, left : left + 30] - left, y[30:60, left : left + 30])
        truth = np.full((96, 128), 0.2, np.float32)
        truth[30:60, left : left + 30] = 0.8
        frames.append(image)
        maps.append(Disparity((rng.uniform(0.8, 1.2) * truth + rng.uniform(-0.1, 0.1)).astype(np.float32)))
    return frames, maps


def stabilised(smoother, frames, maps):
    return [d.values for _, d, _ in smoother.smooth((t, f, m) for t, (f, m) in enumerate(zip(frames, maps)))]


def test_flow_keeps_a_moving_squares_depth_with_it_and_steadies_the_still_background():
    frames, maps = moving_square()
    results = {method: stabilised(make_smoother(method), frames, maps) for method in ("none", "ema", "flow")}

    def trail(out):  # behind the square, where it was a few frames ago: as far as the background?
        return max(np.abs(out[t][30:60, 20 + 3 * t - 9 : 20 + 3 * t] - np.median(out[t][5:25])).max()
                   for t in range(5, 20))

    def background_flicker(out):
        return float(np.std([np.median(out[t][5:25]) for t in range(5, 20)]))

    assert trail(results["ema"]) > 0.15  # the moving average smears the square backwards
    assert trail(results["flow"]) < 0.05
    assert background_flicker(results["flow"]) < 0.4 * background_flicker(results["none"])
    square = [np.median(results["flow"][t][35:55, 25 + 3 * t : 45 + 3 * t]) for t in range(5, 20)]
    assert min(square) > 0.6  # the square stays near, frame after frame


def test_flow_restarts_at_a_cut():
    frames, maps = moving_square(10)
    other = [np.ascontiguousarray(1 - frame[::-1]) for frame in frames]  # another shot
    cut_maps = maps[:5] + [Disparity(np.full((96, 128), 0.5, np.float32) + 0.1 * np.eye(96, 128, dtype=np.float32))
                           for _ in range(5)]
    smoother = FlowStabilizer()
    out = stabilised(smoother, frames[:5] + other[5:], cut_maps)
    assert smoother.cuts == 1
    assert np.array_equal(out[5], cut_maps[5].values)  # nothing of the first shot leaks across
