"""Image sequences: a folder of numbered frames converted as one video (--sequence), and stereo
video written as numbered frames (--frames-out), with refusal, resume and size checks."""

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from conftest import SYNTHETIC_DISP, run
from sbsconvert.errors import SbsError
from sbsconvert.video.decode import FrameSequenceReader, parse_frame_rate

WIDTH, HEIGHT = 96, 64
FRAMES = 10


def marker(index):
    """The colour of frame `index` (1-based): red counts the frames, so the order can be read back."""
    return np.array([20 * index, 90, 160], dtype=np.uint8)


def make_sequence(folder, count=FRAMES, size=(WIDTH, HEIGHT)):
    """frame1.png ... frameN.png, each a flat frame-specific colour with a dark bar (something to warp)."""
    folder.mkdir()
    for index in range(1, count + 1):
        pixels = np.empty((size[1], size[0], 3), np.uint8)
        pixels[:] = marker(index)
        pixels[:, size[0] // 2 : size[0] // 2 + 8] = 10
        Image.fromarray(pixels).save(folder / f"frame{index}.png")
    return folder


def make_clip(path, count=8, rate=25, audio=True):
    """An H.264 clip of the marker colours (plus a silent AAC track)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = container.add_stream("aac", rate=48000) if audio else None
        for index in range(1, count + 1):
            pixels = np.broadcast_to(marker(index), (HEIGHT, WIDTH, 3)).copy()
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index - 1
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            for start in range(0, 48000 * count // rate, 1024):
                block = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
                block.sample_rate, block.pts = 48000, start
                container.mux(sound.encode(block))
            container.mux(sound.encode(None))
    return path


def ramp_map(tmp_path):
    """A disparity map of the frames' shape (one of another shape is refused)."""
    path = tmp_path / "ramp.npy"
    np.save(path, np.tile(np.linspace(0, 1, WIDTH, dtype=np.float32), (HEIGHT, 1)))
    return path


def decoded(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, stream.average_rate


def left_colour(image):
    """Mean colour of the left eye's left quarter (away from the bar and the warp's holes)."""
    return np.asarray(image)[:, : WIDTH // 4].reshape(-1, 3).mean(axis=0)


def test_sequence_becomes_one_video_in_natural_order_at_the_given_rate(tmp_path):
    folder = make_sequence(tmp_path / "shot")
    code, output = run(folder, "--sequence", "--fps", "29.97", "--disparity", ramp_map(tmp_path), "-q")
    assert code == 0, output
    frames, rate = decoded(tmp_path / "shot_LR.mp4")
    assert rate == Fraction(30000, 1001)
    assert len(frames) == FRAMES
    for index, frame in enumerate(frames, start=1):
        assert frame.shape == (HEIGHT, 2 * WIDTH, 3)
        # frame10 sorts after frame9 (not after frame1): each frame keeps its own marker colour.
        assert np.abs(left_colour(frame) - marker(index)).max() < 4, index


def test_sequence_fps_and_output_name_options(tmp_path):
    folder = make_sequence(tmp_path / "shot", count=6)
    code, output = run(folder, "--sequence", "--fps", "24", "--disparity", ramp_map(tmp_path), "-f", "tb",
                       "-o", tmp_path / "out.mkv", "-q")
    assert code == 0, output
    frames, rate = decoded(tmp_path / "out.mkv")
    assert rate == 24 and len(frames) == 6 and frames[0].shape == (2 * HEIGHT, WIDTH, 3)
    assert parse_frame_rate("30000/1001") == Fraction(30000, 1001) == parse_frame_rate("29.97")
    assert parse_frame_rate("12.5") == Fraction(25, 2)
    with pytest.raises(SbsError, match="not a frame rate"):
        parse_frame_rate("fast")
    with pytest.raises(SbsError, match="above 0"):
        parse_frame_rate("0")


def test_mismatched_frame_sizes_fail_with_one_line_and_no_output(tmp_path):
    folder = make_sequence(tmp_path / "shot", count=6)
    Image.new("RGB", (WIDTH + 2, HEIGHT)).save(folder / "frame4.png")
    code, output = run(folder, "--sequence", "--disparity", SYNTHETIC_DISP, "-q")
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "frame4.png" in lines[0] and "98x64" in lines[0] and "same size" in lines[0], output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shot"]
    with pytest.raises(SbsError, match="frame4.png"):
        FrameSequenceReader(folder, Fraction(30))


def test_sequence_needs_a_folder_and_fps_needs_sequence(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", count=3, audio=False)
    code, output = run(clip, "--sequence", "--disparity", SYNTHETIC_DISP, "-q")
    assert code == 1 and "--sequence reads a folder" in output and len(output.strip().splitlines()) == 1
    code, output = run(clip, "--fps", "25", "--disparity", SYNTHETIC_DISP, "-q")
    assert code == 1 and "--fps" in output
    code, output = run(tmp_path / "empty", "--sequence", "-q")
    assert code == 1 and "folder" in output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]


def test_frames_out_from_a_clip_writes_numbered_images_and_notes_the_audio(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", count=8)
    code, output = run(clip, "--frames-out", "--disparity", ramp_map(tmp_path))
    assert code == 0, output
    assert "audio is not written" in output
    folder = tmp_path / "clip_LR"
    names = sorted(path.name for path in folder.iterdir())
    assert names == [f"{index:06d}.png" for index in range(1, 9)]
    for index, name in enumerate(names, start=1):
        with Image.open(folder / name) as image:
            assert image.size == (2 * WIDTH, HEIGHT)
            assert np.abs(left_colour(image.convert("RGB")) - marker(index)).max() < 4


def test_frames_out_refuses_existing_frames_and_skip_existing_resumes(tmp_path):
    folder = make_sequence(tmp_path / "shot", count=6)
    target = tmp_path / "frames"
    args = [folder, "--sequence", "--frames-out", "--type", "jpg", "-f", "lr-pair", "--disparity", ramp_map(tmp_path),
            "-o", target, "-q"]
    code, output = run(*args)
    assert code == 0, output
    left, right = tmp_path / "frames_L", tmp_path / "frames_R"
    assert sorted(path.name for path in right.iterdir()) == [f"{index:06d}.jpg" for index in range(1, 7)]
    with Image.open(left / "000003.jpg") as image:
        assert image.size == (WIDTH, HEIGHT)
    # A second run refuses up front, with one line, and touches nothing.
    before = {path: path.stat().st_mtime_ns for path in left.iterdir()}
    code, output = run(*args)
    assert code == 1 and len(output.strip().splitlines()) == 1 and "already holds frames" in output
    # An interrupted run (frames 5 and 6 missing) resumes: finished frames are kept as they are.
    for name in ("000005.jpg", "000006.jpg"):
        (left / name).unlink()
    code, output = run(*args, "--skip-existing")
    assert code == 0, output
    assert len(list(left.iterdir())) == 6
    assert all(path.stat().st_mtime_ns == before[path] for path in left.iterdir() if path.name < "000005.jpg")
    code, output = run(*args, "--force")
    assert code == 0, output
    assert (left / "000001.jpg").stat().st_mtime_ns != before[left / "000001.jpg"]
    # --force from a shorter sequence replaces the folder: no frames of the longer run remain
    for extra in sorted(folder.iterdir())[3:]:
        extra.unlink()
    code, output = run(*args, "--force")
    assert code == 0, output
    assert sorted(path.name for path in left.iterdir()) == [f"{index:06d}.jpg" for index in range(1, 4)]


def test_frames_out_needs_a_video_and_takes_no_encoder_options(tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (WIDTH, HEIGHT)).save(photo)
    code, output = run(photo, "--frames-out", "--disparity", SYNTHETIC_DISP, "-q")
    assert code == 1 and "--frames-out" in output and len(output.strip().splitlines()) == 1
    clip = make_clip(tmp_path / "clip.mp4", count=3, audio=False)
    code, output = run(clip, "--frames-out", "--crf", "20", "--disparity", SYNTHETIC_DISP, "-q")
    assert code == 1 and "--crf set the video encoder" in output
    assert not (tmp_path / "clip_LR").exists()
