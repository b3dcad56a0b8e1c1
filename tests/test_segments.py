"""Segmented, resumable video: a long clip converted in keyframe-aligned segments through a work
folder, killed and resumed, joined without re-encoding; trimming (--start/--end/--preview/--max-fps)."""

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest

import sbsconvert.video.pipeline as pipeline
from conftest import SAMPLES, run
from sbsconvert.core import Job
from sbsconvert.disparity import Disparity
from sbsconvert.video.segments import (
    FrameIndex,
    parse_time,
    plan_segments,
    read_index,
    select_frames,
    work_folder,
)
from sbsconvert.video.temporal import TemporalSmoother
from test_video import scene_frames

RATE = 2  # frames per second of the short clips
SAMPLE_RATE = 16000  # audio: enough to tell packets apart, cheap to encode
WIDTH, HEIGHT = 64, 48
DISPARITY = SAMPLES / "disparity" / "clip.png"
REPO = Path(__file__).resolve().parent.parent


def long_clip(path: Path, seconds: int, gop: int = 10, rate: int = RATE) -> Path:
    """H.264 (a keyframe every `gop` frames, B-frames) plus AAC, 64x48 at `rate` fps, a slow pan."""
    frames = seconds * rate
    time_base = Fraction(1, rate * 100)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"crf": "12", "g": str(gop), "keyint_min": str(gop)})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        sound = container.add_stream("aac", rate=SAMPLE_RATE)
        for index, image in enumerate(scene_frames(frames, WIDTH, HEIGHT, motion=1)):
            frame = av.VideoFrame.from_ndarray(np.round(image * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index * 100, time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        tone = (0.2 * np.sin(np.arange(SAMPLE_RATE * seconds) * 2 * np.pi * 440 / SAMPLE_RATE)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            block = av.AudioFrame.from_ndarray(np.stack([tone[start : start + 1024]] * 2), format="fltp", layout="stereo")
            block.sample_rate, block.pts = SAMPLE_RATE, start
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory):
    return long_clip(tmp_path_factory.mktemp("long") / "film.mp4", 120, gop=5, rate=1)  # 120 frames


@pytest.fixture(scope="module")
def short_film(tmp_path_factory):
    return long_clip(tmp_path_factory.mktemp("short") / "short.mp4", 30, gop=6)


def streams(path: Path) -> dict:
    """What a player gets: every video frame with its timestamp, every audio packet, the stream layout."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [(frame.pts, frame.to_ndarray(format="rgb24")) for frame in container.decode(video)]
        container.seek(0)
        audio = [(packet.pts, bytes(packet)) for packet in container.demux(container.streams.audio[0]) if packet.size]
        return {
            "types": [stream.type for stream in container.streams],
            "time_base": video.time_base,
            "rate": video.average_rate,
            "pts": [pts for pts, _ in frames],
            "pixels": [pixels for _, pixels in frames],
            "audio": audio,
        }


def assert_same(a: dict, b: dict) -> None:
    """Same streams, frames (bit for bit), timestamps and audio packets."""
    assert a["types"] == b["types"] and a["time_base"] == b["time_base"] and a["rate"] == b["rate"]
    assert a["pts"] == b["pts"]
    assert len(a["pixels"]) == len(b["pixels"])
    assert all(np.array_equal(x, y) for x, y in zip(a["pixels"], b["pixels"]))
    assert a["audio"] == b["audio"]


def assert_identical(a: Path, b: Path) -> None:
    """The same file byte for byte: conversion, segmenting, resuming and Ray are deterministic.
    The streams are compared first so that a failure says what differs."""
    assert_same(streams(a), streams(b))
    assert a.read_bytes() == b.read_bytes()


def command(source: Path, out: Path, *extra: object) -> list[str]:
    return [sys.executable, "-m", "sbsconvert", str(source), "--disparity", str(DISPARITY), "-o", str(out),
            "--segment-seconds", "30", "-v", *map(str, extra)]


def converted_segments(stderr: str) -> int:
    """Segments this run converted: each prints its '<name>: N frames, ...' timing line with -v."""
    return sum(1 for line in stderr.splitlines() if " frames, decode " in line)


def done_segments(out: Path) -> int:
    try:
        manifest = json.loads((work_folder(Job(Path(), [out])) / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(entry["done"] for entry in manifest["segments"])


def test_killed_video_resumes_only_the_unfinished_segments(two_minutes, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    reference = tmp_path / "reference.mp4"
    whole = subprocess.run(command(two_minutes, reference), capture_output=True, text=True, env=environment, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert converted_segments(whole.stderr) == 4  # 120 frames, 30 s segments
    assert not work_folder(Job(two_minutes, [reference])).exists()

    out = tmp_path / "killed.mp4"
    process = subprocess.Popen(command(two_minutes, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    deadline = time.monotonic() + 300
    while done_segments(out) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    done = done_segments(out)
    assert 2 <= done < 4 and not out.exists(), "the run was not killed mid-way"
    folder = work_folder(Job(two_minutes, [out]))
    finished = {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in folder.glob("*.npz")}

    resumed = subprocess.Popen(command(two_minutes, out, "--resume"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment)
    # The finished segments' files are never rewritten: same inode and time while the rest is redone.
    while resumed.poll() is None and folder.exists():
        for path in folder.glob("*.npz"):
            if path.name in finished:
                stat = path.stat() if path.exists() else None
                assert stat is None or (stat.st_ino, stat.st_mtime_ns) == finished[path.name]
        time.sleep(0.05)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"resuming, {done} of 4 segments already done" in stderr
    assert converted_segments(stderr) == 4 - done
    assert_identical(out, reference)
    assert not folder.exists()


def test_segmented_output_has_the_timestamps_audio_and_stream_layout_of_a_one_piece_run(short_film, tmp_path):
    pieces, whole = tmp_path / "pieces.mp4", tmp_path / "whole.mp4"
    assert run(short_film, "--disparity", DISPARITY, "-o", pieces, "--segment-seconds", "6", "-q")[0] == 0
    assert run(short_film, "--disparity", DISPARITY, "-o", whole, "--segment-seconds", "1000", "-q")[0] == 0
    a, b = streams(pieces), streams(whole)
    assert a["types"] == b["types"] == ["video", "audio"]
    assert (a["time_base"], a["rate"], a["pts"], a["audio"]) == (b["time_base"], b["rate"], b["pts"], b["audio"])
    # The frames differ only by the encoder's choices (a new GOP per segment), not in content.
    difference = np.mean([np.abs(x.astype(float) - y).mean() for x, y in zip(a["pixels"], b["pixels"])])
    assert difference < 2.0


@pytest.mark.parametrize("suffix, codec, seconds", [(".mp4", "h264", "1000"), (".mkv", "hevc", "1000"),
                                                   (".mkv", "h264", "6")])
def test_the_same_command_twice_writes_the_same_bytes(short_film, tmp_path, suffix, codec, seconds):
    """No run-to-run variation anywhere: frames, encoder, packets, container (Matroska's UIDs)."""
    outs = [tmp_path / f"{name}{suffix}" for name in ("first", "second")]
    for out in outs:
        assert run(short_film, "--disparity", DISPARITY, "-o", out, "--codec", codec, "--segment-seconds", seconds,
                   "-q")[0] == 0
    assert_identical(*outs)


class Killed(Exception):
    """Stands for the process dying after some segments were finished."""


def interrupted_run(monkeypatch, after: int, *args: object) -> None:
    real = pipeline.convert_video
    calls = []

    def dies_after(*call_args, **options):
        if len(calls) == after:
            raise Killed
        calls.append(1)
        return real(*call_args, **options)

    monkeypatch.setattr(pipeline, "convert_video", dies_after)
    with pytest.raises(Killed):
        run(*args)
    monkeypatch.setattr(pipeline, "convert_video", real)


@pytest.mark.parametrize("extra", [("-f", "lr-pair"), ("--frames-out", "--type", "png")])
def test_resume_works_for_two_file_layouts_and_frame_folders(short_film, tmp_path, monkeypatch, extra):
    base = ("--disparity", DISPARITY, "--segment-seconds", "6", "-q", *extra)
    suffix = "" if "--frames-out" in extra else ".mp4"
    assert run(short_film, "-o", tmp_path / f"whole{suffix}", *base)[0] == 0
    interrupted_run(monkeypatch, 2, short_film, "-o", tmp_path / f"resumed{suffix}", *base)
    assert run(short_film, "-o", tmp_path / f"resumed{suffix}", *base, "--resume")[0] == 0
    names = ["whole_L", "whole_R"] if "lr-pair" in extra else ["whole"]
    for name in names:
        whole = tmp_path / f"{name}{suffix}"
        resumed = tmp_path / f"{name.replace('whole', 'resumed')}{suffix}"
        if suffix:
            assert_identical(resumed, whole)
        else:
            assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in whole.iterdir())
            assert len(list(whole.iterdir())) == 60
            assert all((resumed / p.name).read_bytes() == p.read_bytes() for p in whole.iterdir())


def test_changed_settings_or_source_start_over_with_one_line(short_film, tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    base = (short_film, "--disparity", DISPARITY, "-o", out, "--segment-seconds", "6")
    interrupted_run(monkeypatch, 2, *base)
    code, output = run(*base, "--divergence", "4")
    assert code == 0
    assert output.count("starting over, the settings changed") == 1 and "resuming" not in output
    interrupted_run(monkeypatch, 2, *base, "--force")
    os.utime(short_film, ns=(time.time_ns(), time.time_ns()))
    code, output = run(*base, "--force")
    assert code == 0 and "starting over, the source changed" in output
    interrupted_run(monkeypatch, 1, *base, "--force")
    code, output = run(*base, "--force", "--no-resume")
    assert code == 0 and "starting over, --no-resume was given" in output


def test_segments_start_at_keyframes_and_warm_up_on_the_frames_before():
    index = FrameIndex(pts=list(range(0, 1000, 10)), keyframes=frozenset(range(0, 1000, 70)), time_base=Fraction(1, 100),
                       frame_rate=Fraction(10))
    frames = select_frames(index, None, None, None)
    segments = plan_segments(frames, index, 2.0, trim=False)
    assert [segment.frames[0] for segment in segments] == [0, 210, 420, 630, 840]
    assert sum(len(segment.frames) for segment in segments) == 100
    assert segments[0].warmup == [] and segments[1].warmup == list(range(90, 210, 10))
    # Trimming and frame-rate caps pick frames by time; a trimmed video starts at 0.
    assert select_frames(index, 1.0, 2.0, None) == list(range(100, 200, 10))
    assert select_frames(index, None, None, 5) == list(range(0, 1000, 20))
    assert plan_segments(select_frames(index, 1.0, None, None), index, 100, trim=True)[0].offset == 100


def test_a_segments_last_frames_are_smoothed_with_the_frames_after_it():
    """The centred smoothing looks ahead: a segment reads the frames just past its end, smooths them
    and drops them, so its last frames get the disparity a one-piece run gives them."""
    index = FrameIndex(pts=list(range(60)), keyframes=frozenset(range(0, 60, 10)), time_base=Fraction(1, 10),
                       frame_rate=Fraction(10))
    first, second, third = plan_segments(list(range(60)), index, 2.0, trim=False)
    assert first.frames == list(range(20)) and first.after == list(range(20, 28)) and second.warmup[-1] == 19
    assert first.writes(19) and not first.writes(20) and third.after == []
    rng = np.random.default_rng(0)
    pixels = [np.full((8, 8, 3), 0.5, np.float32) for _ in range(60)]  # one shot: no cut resets the average
    maps = [Disparity(rng.random((8, 8), dtype=np.float32), False) for _ in range(60)]
    whole = {pts: d.values for pts, d, _ in TemporalSmoother().smooth((pts, pixels[pts], maps[pts]) for pts in range(60))}

    def segmented(frames: list[int]) -> dict:
        smoother = TemporalSmoother()
        for pts in second.warmup:
            smoother(pixels[pts], maps[pts])
        smoothed = smoother.smooth((pts, pixels[pts], maps[pts]) for pts in frames)
        return {pts: d.values for pts, d, _ in smoothed if second.writes(pts)}

    with_after = segmented(second.frames + second.after)
    assert sorted(with_after) == second.frames
    last = second.frames[-1]
    # Left over from the warm-up's start: 0.6^12 of the average, far below a level.
    assert np.abs(with_after[last] - whole[last]).max() < 1e-2
    assert np.abs(segmented(second.frames)[last] - whole[last]).max() > 1e-1  # what the look-ahead frames change


def test_the_index_lists_every_frame_and_the_keyframes(short_film):
    index = read_index(short_film)
    assert len(index.pts) == 60 and len(index.keyframes) == 10
    assert parse_time("1:30", "--start") == 90.0 and parse_time("0:01:02.5", "--start") == 62.5


def test_start_and_end_trim_video_and_audio_to_the_range(short_film, tmp_path):
    out = tmp_path / "trim.mp4"
    assert run(short_film, "--disparity", DISPARITY, "-o", out, "--start", "5", "--end", "0:12", "-q")[0] == 0
    result = streams(out)
    assert len(result["pts"]) == 14 and result["pts"][0] == 0  # 7 s at 2 fps, from 0
    seconds = [float(pts * result["time_base"]) for pts in result["pts"]]
    assert seconds == pytest.approx([index / RATE for index in range(14)])
    audio_end = max(float(pts / SAMPLE_RATE) for pts, _ in result["audio"])
    assert 6.5 < audio_end <= 7.0


def test_end_alone_cuts_video_and_audio_there(short_film, tmp_path):
    out = tmp_path / "head.mp4"
    assert run(short_film, "--disparity", DISPARITY, "-o", out, "--end", "4", "-q")[0] == 0
    result = streams(out)
    assert len(result["pts"]) == 8 and result["pts"][0] == 0
    assert 3.5 < max(float(pts / SAMPLE_RATE) for pts, _ in result["audio"]) <= 4.0


def test_preview_is_ten_seconds_from_the_middle(short_film, tmp_path):
    out = tmp_path / "preview.mp4"
    assert run(short_film, "--disparity", DISPARITY, "-o", out, "--preview", "-q")[0] == 0
    assert len(streams(out)["pts"]) == 20


def test_max_fps_keeps_every_other_frame_with_its_timestamp(short_film, tmp_path):
    out = tmp_path / "half.mp4"
    assert run(short_film, "--disparity", DISPARITY, "-o", out, "--max-fps", "1", "-q")[0] == 0
    result = streams(out)
    assert len(result["pts"]) == 30 and result["rate"] == 1
    assert [float(pts * result["time_base"]) for pts in result["pts"]] == pytest.approx(list(range(30)))


@pytest.mark.parametrize("args, words", [
    (("--start", "abc"), "--start 'abc' is not a time"),
    (("--start", "9", "--end", "3"), "--end (3) must come after --start (9)"),
    (("--preview", "--start", "3"), "--preview picks its own 10 seconds"),
    (("--start", "1:00"), "no frames between --start and --end (the video lasts 29.5 s)"),
])
def test_bad_trim_options_are_one_line(short_film, tmp_path, args, words):
    code, output = run(short_film, "--disparity", DISPARITY, "-o", tmp_path / "x.mp4", *args)
    assert code != 0 and words in output and "Traceback" not in output
    assert not (tmp_path / "x.mp4").exists()


def test_segment_options_on_photos_are_refused(tmp_path):
    code, output = run(SAMPLES / "synthetic.png", "--max-fps", "10", "-o", tmp_path / "x.jpg")
    assert code != 0 and "--max-fps only apply to videos" in output


@pytest.mark.parametrize("suffix, codec", [(".mp4", "h264"), (".mkv", "hevc"), (".mov", "hevc")])
def test_joined_file_has_the_tags_and_stereo_metadata_of_a_one_piece_run(short_film, tmp_path, suffix, codec):
    pieces, whole = tmp_path / f"pieces{suffix}", tmp_path / f"whole{suffix}"
    for out, seconds in ((pieces, "6"), (whole, "1000")):
        assert run(short_film, "--disparity", DISPARITY, "-o", out, "--codec", codec, "--segment-seconds", seconds,
                   "-q")[0] == 0

    def described(path):
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            return (dict(container.metadata), dict(video.metadata), video.codec_context.name,
                    video.codec_context.codec_tag, [stream.type for stream in container.streams])

    assert described(pieces) == described(whole)
    if suffix != ".mkv":
        assert (b"st3d" in pieces.read_bytes()) and (b"st3d" in whole.read_bytes())
    else:
        assert described(pieces)[1].get("stereo_mode") == "left_right"


def test_spatial_video_in_segments_resumes_and_joins_into_one_mv_hevc_stream(short_film, tmp_path, monkeypatch):
    """Each segment keeps its two-view stream (both layers start with an IDR picture); the join
    muxes them as one, with Apple's boxes and the source's audio, as a one-piece run writes them."""
    from test_spatial_video import ffmpeg_log, psnr, sample_entry, views

    base = ("--disparity", DISPARITY, "-f", "spatial", "-q")
    assert run(short_film, "-o", tmp_path / "one.mov", *base)[0] == 0
    assert run(short_film, "-o", tmp_path / "whole.mov", *base, "--segment-seconds", "6")[0] == 0
    interrupted_run(monkeypatch, 2, short_film, "-o", tmp_path / "resumed.mov", *base, "--segment-seconds", "6")
    assert len(list(work_folder(Job(short_film, [tmp_path / "resumed.mov"])).glob("*.npz"))) == 2
    code, output = run(short_film, "-o", tmp_path / "resumed.mov", *base[:-1], "--segment-seconds", "6")
    assert code == 0 and "resuming, 2 of 5 segments already done" in output
    assert (tmp_path / "resumed.mov").read_bytes() == (tmp_path / "whole.mov").read_bytes()
    decoded = []
    assert ffmpeg_log(lambda: decoded.append(views(tmp_path / "whole.mov")), av.logging.WARNING) == []  # no complaint
    one, whole = views(tmp_path / "one.mov"), decoded[0]
    assert len(whole[0]) == len(whole[1]) == 60 and whole[2] == one[2]  # both views of every frame, same times
    for eye in (0, 1):  # the same pictures, encoded in other GOPs
        assert min(psnr(a, b) for a, b in zip(whole[eye], one[eye])) > 35
    assert streams(tmp_path / "whole.mov")["audio"] == streams(tmp_path / "one.mov")["audio"]
    assert [child.kind for child in sample_entry(tmp_path / "whole.mov").children if child.kind in (b"vexu", b"hfov")] \
        == [b"vexu", b"hfov"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["one.mov", "resumed.mov", "whole.mov"]


def test_a_trimmed_spatial_video_starts_at_zero_with_its_audio_cut_alike(short_film, tmp_path):
    from test_spatial_video import views

    code, output = run(short_film, "--disparity", DISPARITY, "-f", "spatial", "-o", tmp_path / "cut.mov",
                       "--start", "10", "--end", "20", "-q")
    assert code == 0, output
    left, right, times = views(tmp_path / "cut.mov")
    assert len(left) == len(right) == 20 and times[0] == 0 and times[-1] == pytest.approx(9.5)
    with av.open(str(tmp_path / "cut.mov")) as container:
        audio = container.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(10, abs=0.2)


def encode_frames(path: Path, images: list[np.ndarray], *, rate: int, gop: int, crf: int) -> Path:
    """H.264 of `images` (HxWx3 float) at `rate` fps, a keyframe every `gop` frames."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "g": str(gop),
                                                                    "keyint_min": str(gop)})
        video.width, video.height, video.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(np.round(image * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def cut_clip(path: Path) -> Path:
    """24 frames at 2 fps (a keyframe every 6) with a scene cut at frame 9: shots [0, 9) and [9, 24)."""
    pan = list(scene_frames(24, WIDTH, HEIGHT, motion=1))
    return encode_frames(path, pan[:9] + [1 - image for image in pan[9:]], rate=RATE, gop=6, crf=12)


def test_diffusion_segments_attend_to_the_anchor_of_the_shot_they_begin_in(tmp_path, tiny_sd, monkeypatch):
    """A segment beginning mid-shot records its shot's anchor from the shot's first frame (before
    the segment), so its frames are painted exactly as in one piece: no seam at the segment start
    (every frame diffused; keyframe painting: tests/test_paint.py)."""
    clip = cut_clip(tmp_path / "cut.mp4")
    index = read_index(clip)
    segments = plan_segments(select_frames(index, None, None, None), index, 3, trim=False)
    assert [index.seconds(segment.frames[0]) for segment in segments] == [0, 3, 6, 9]
    primed = []
    real_prime = pipeline.ShotRenderer.prime
    monkeypatch.setattr(pipeline.ShotRenderer, "prime", lambda self, request: primed.append(request.image) or real_prime(self, request))
    base = ("--engine", "diffusion", "--model", tiny_sd, "--steps", "2", "--disparity", DISPARITY, "--frames-out",
            "--type", "png", "-q", "--video-paint", "every-frame")
    assert run(clip, "-o", tmp_path / "one", *base)[0] == 0
    assert primed == []
    assert run(clip, "-o", tmp_path / "segmented", *base, "--segment-seconds", "3")[0] == 0
    # Segments 2 to 4 begin mid-shot: their anchors are frame 0 (shot 1) and frame 9 (shot 2).
    with av.open(str(clip)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert [next(n for n, image in enumerate(decoded) if np.array_equal(np.round(p * 255), image)) for p in primed] \
        == [0, 9, 9]
    one, segmented = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "segmented").iterdir())
    assert len(one) == 24 and [p.name for p in one] == [p.name for p in segmented]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, segmented))
