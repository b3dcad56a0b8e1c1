"""Video end to end on small clips made here with PyAV: timing, audio copy, layout, rotation, odd
sizes, bad files, resume, presets, and the temporal smoothing that keeps the warp from flickering."""

import json
import shutil
import subprocess
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_engine, run
from sbsconvert.cli import main
from sbsconvert.convert import ConvertSettings
from sbsconvert.core import Job
from sbsconvert.disparity import Disparity, load_disparity_file, normalize, pixel_shift
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import WarpEngine
from sbsconvert.errors import SbsError
from sbsconvert.jobs import plan_jobs
from sbsconvert.synthetic import render_scene
from sbsconvert.video.decode import VideoReader
from sbsconvert.video.encode import VideoSettings, even_size, parse_bitrate
from sbsconvert.video.pipeline import convert_video
from sbsconvert.video.temporal import TemporalSmoother, flicker

WIDTH, HEIGHT = 96, 64
SAMPLE_RATE = 48000


def run_json(*args):
    result = CliRunner().invoke(main, [str(a) for a in args] + ["--json", "-q"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def scene_frames(count, width=WIDTH, height=HEIGHT, motion=2):
    """A camera panning across the synthetic scene by `motion` pixels per frame (0: a still shot)."""
    scene = render_scene(width + motion * count, height)
    for index in range(count):
        yield np.ascontiguousarray(scene.left[:, motion * index : motion * index + width])


def make_clip(path, frames=12, width=WIDTH, height=HEIGHT, rate=30, pts=None, audio=True, rotation=None, motion=2,
              options=None, images=None):
    """Write an H.264 clip (plus an AAC track) of `images` (default: a pan across the synthetic
    scene) and return its frames' times in seconds."""
    time_base = Fraction(1, rate * 10)
    pts = list(range(0, 10 * frames, 10)) if pts is None else pts
    with av.open(str(path), "w", options=options or {}) as container:
        webm = path.suffix == ".webm"  # WebM holds only VP8/VP9/AV1; 4:4:4 H.264 allows odd sizes
        video = container.add_stream("libvpx" if webm else "libx264", rate=rate, options={} if webm else {"crf": "10"})
        video.width, video.height = width, height
        video.pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=SAMPLE_RATE) if audio else None
        for image, stamp in zip(images if images is not None else scene_frames(frames, width, height, motion), pts):
            frame = av.VideoFrame.from_ndarray(np.round(image * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = int(SAMPLE_RATE * frames / rate)
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = np.stack([tone[start : start + 1024]] * 2)
                block = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                block.sample_rate, block.pts = SAMPLE_RATE, start
                container.mux(sound.encode(block))
            container.mux(sound.encode(None))
    return [float(stamp * time_base) for stamp in pts]


def decoded(path):
    """(frames as float RGB, times in seconds, average rate) of a video's first video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24").astype(np.float32) / 255)
            times.append(float(frame.pts * frame.time_base))
    return frames, times, rate


def audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def disparity_map(tmp_path, width=WIDTH, height=HEIGHT):
    """The synthetic scene's disparity as an 8-bit map (relative: brighter = nearer)."""
    scene = render_scene(width, height)
    path = tmp_path / "map.png"
    cv2.imwrite(str(path), np.round(normalize(scene.disparity) * 255).astype(np.uint8))
    return path


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if ".part" in path.name)


def test_cli_keeps_frames_timestamps_rate_and_copies_audio(tmp_path):
    clip = tmp_path / "clip.mp4"
    times = make_clip(clip, frames=15)
    map_path = disparity_map(tmp_path)
    code, output = run(clip, "--disparity", map_path, "-q")
    assert code == 0, output
    out = tmp_path / "clip_LR.mp4"
    frames, out_times, rate = decoded(out)
    source_frames, source_times, source_rate = decoded(clip)
    assert len(frames) == 15 and rate == source_rate == 30
    assert np.allclose(out_times, times, atol=1e-3) and np.allclose(source_times, times, atol=1e-3)
    assert audio_packets(out) == audio_packets(clip)  # remuxed, not re-encoded: identical bytes
    for frame, source in zip(frames, source_frames):
        assert frame.shape == (HEIGHT, 2 * WIDTH, 3)
        assert np.abs(frame[:, :WIDTH] - source).mean() < 0.02  # left eye = the input frame
        # Right eye = the warp of the input frame by the map's shifts (default 3 % divergence).
        disparity = load_disparity_file(map_path)
        expected = WarpEngine().render(StereoRequest(source, disparity.values, pixel_shift(disparity, WIDTH, 3.0, 0.0))).right
        assert np.abs(frame[:, WIDTH:] - expected).mean() < 0.02 < np.abs(frame[:, WIDTH:] - source).mean()


def test_variable_frame_rate_timestamps_survive(tmp_path):
    clip = tmp_path / "vfr.mkv"
    pts = [0, 10, 30, 35, 70, 80, 81, 120, 150, 155]  # 1/300 s units: irregular gaps
    times = make_clip(clip, frames=len(pts), pts=pts, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-q")
    assert code == 0, output
    _, out_times, _ = decoded(tmp_path / "vfr_LR.mkv")
    assert np.allclose(np.diff(out_times), np.diff(times), atol=1e-3)
    assert len(out_times) == len(pts)


def test_rotation_metadata_is_applied(tmp_path):
    clip = tmp_path / "phone.mov"
    make_clip(clip, frames=3, rotation=90, audio=False)
    out = tmp_path / "phone_LR.mov"
    code, output = run(clip, "--disparity", disparity_map(tmp_path, HEIGHT, WIDTH), "-q")
    assert code == 0, output
    frames, _, _ = decoded(out)
    stored = next(scene_frames(1))
    assert frames[0].shape == (WIDTH, 2 * HEIGHT, 3)  # portrait: the 96x64 frames turned upright
    assert np.abs(frames[0][:, :HEIGHT] - np.rot90(stored, 1)).mean() < 0.03  # 90 degrees counter-clockwise
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).rotation == 0  # pixels upright, no matrix left


@pytest.mark.parametrize("layout, size", [("sbs", (190, 64)), ("lr-pair", (96, 64)), ("htb", (96, 62))])
def test_odd_sizes_are_padded_by_one_pixel(tmp_path, layout, size):
    clip = tmp_path / "odd.mp4"
    make_clip(clip, frames=4, width=95, height=63, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path, 95, 63), "-f", layout, "-o", tmp_path / "out.mp4")
    assert code == 0, output
    names = ["out_L.mp4", "out_R.mp4"] if layout == "lr-pair" else ["out.mp4"]
    source = decoded(clip)[0][0]
    for name in names:
        frames, _, _ = decoded(tmp_path / name)
        assert (frames[0].shape[1], frames[0].shape[0]) == size and len(frames) == 4
    if layout == "lr-pair":  # two synchronised files: identical timing, e.g. for an MV-HEVC muxer
        assert decoded(tmp_path / "out_L.mp4")[1] == decoded(tmp_path / "out_R.mp4")[1]
    left = decoded(tmp_path / names[0])[0][0]
    if layout != "htb":
        assert np.abs(left[:63, :95] - source).mean() < 0.02
        assert np.abs(left[63] - left[62]).mean() < 0.02  # the padding row repeats the last one


def test_mkv_carries_stereo_mode_and_preset_picks_hevc(tmp_path):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=4)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "tb", "--preset", "vision-pro", "-q")
    assert code == 0, output
    with av.open(str(tmp_path / "clip_TB.mkv")) as container:
        stream = container.streams.video[0]
        assert stream.metadata["stereo_mode"] == "top_bottom"
        assert stream.codec_context.name == "hevc" and stream.codec_context.pix_fmt == "yuv420p"  # as the source
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]


def test_hevc_in_mp4_is_tagged_hvc1_for_apple_players(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "--codec", "hevc", "--crf", "30", "-q")
    assert code == 0, output
    with av.open(str(tmp_path / "clip_LR.mp4")) as container:
        assert container.streams.video[0].codec_tag == "hvc1"


def _truncated(path):
    make_clip(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_index_first(path):
    make_clip(path, frames=30, options={"movflags": "faststart"})  # index at the front: still opens
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])


def _no_video(path):
    with av.open(str(path), "w") as container:
        sound = container.add_stream("aac", rate=SAMPLE_RATE)
        block = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        block.sample_rate, block.pts = SAMPLE_RATE, 0
        container.mux(sound.encode(block))
        container.mux(sound.encode(None))


BAD_CLIPS = {
    "empty.mp4": (lambda path: path.write_bytes(b""), "empty"),
    "noise.mp4": (lambda path: path.write_bytes(np.random.default_rng(0).bytes(5000)), "not a readable video"),
    "truncated.mp4": (_truncated, "not a readable video"),
    "sound.mp4": (_no_video, "has no video stream"),
    "cut.mp4": (_truncated_index_first, "truncated"),
}


@pytest.mark.parametrize("name", sorted(BAD_CLIPS))
def test_bad_videos_give_one_error_line_and_no_output(tmp_path, name):
    make, message = BAD_CLIPS[name]
    clip = tmp_path / name
    make(clip)
    code, output = run(clip, "--disparity", disparity_map(tmp_path))
    assert code == 1
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], output
    assert "Traceback" not in output
    assert not (tmp_path / name.replace(".mp4", "_LR.mp4")).exists() and leftovers(tmp_path) == []


def test_batch_of_photos_and_videos_goes_on_past_bad_files_and_resumes(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    make_clip(album / "good.mp4", frames=6)
    make_clip(album / "web.webm", frames=4, audio=False)
    for name in ("noise.mp4", "truncated.mp4"):
        BAD_CLIPS[name][0](album / name)
    cv2.imwrite(str(album / "photo.png"), np.round(render_scene(WIDTH, HEIGHT).left[:, :, ::-1] * 255).astype(np.uint8))
    maps = tmp_path / "maps"
    maps.mkdir()
    for stem in ("good", "web", "photo"):
        disparity_map(tmp_path).rename(maps / f"{stem}.png")
    out = tmp_path / "out"
    code, summary = run_json(album, "--disparity", maps, "-o", out)
    assert code == 1
    assert sorted(entry["input"].rsplit("/", 1)[1] for entry in summary["converted"]) == ["good.mp4", "photo.png", "web.webm"]
    assert sorted(entry["input"].rsplit("/", 1)[1] for entry in summary["failed"]) == ["noise.mp4", "truncated.mp4"]
    assert sorted(path.name for path in out.iterdir()) == ["good_LR.mp4", "photo_LR.png", "web_LR.mkv"]
    assert len(decoded(out / "web_LR.mkv")[0]) == 4  # WebM in, Matroska out (H.264 cannot go in WebM)

    finished = (out / "good_LR.mp4").stat().st_mtime_ns
    code, summary = run_json(album, "--disparity", maps, "-o", out, "--skip-existing")
    assert len(summary["skipped"]) == 3 and not summary["converted"]
    assert (out / "good_LR.mp4").stat().st_mtime_ns == finished


def test_video_output_names_keep_the_container(tmp_path):
    for name in ("a.mp4", "b.MOV", "c.webm", "d.avi", "e.m4v", "f.jpg"):
        (tmp_path / name).write_bytes(b"x")
    names = [[path.name for path in job.outputs] for job in plan_jobs([tmp_path], tmp_path / "out", "sbs", "png", False)]
    assert names == [["a_LR.mp4"], ["b_LR.mov"], ["c_LR.mkv"], ["d_LR.mkv"], ["e_LR.m4v"], ["f_LR.png"]]
    pair = plan_jobs([tmp_path / "a.mp4"], tmp_path / "x.mkv", "lr-pair", None, False)[0].outputs
    assert [path.name for path in pair] == ["x_L.mkv", "x_R.mkv"]
    with pytest.raises(SbsError, match="video file name"):
        plan_jobs([tmp_path / "a.mp4"], tmp_path / "x.jpg", "sbs", None, False)


def test_video_options_are_checked():
    assert parse_bitrate("12M") == 12_000_000 and parse_bitrate("800k") == 800_000 and parse_bitrate("2.5M") == 2_500_000
    with pytest.raises(SbsError, match="not a number"):
        parse_bitrate("fast")
    with pytest.raises(SbsError, match="contradict"):
        VideoSettings(crf=20, bitrate="8M").check()
    with pytest.raises(SbsError, match="pixel format"):
        VideoSettings(pixel_format="rgb24").check()
    assert even_size(np.zeros((3, 5, 3))).shape == (4, 6, 3)


def test_video_only_options_with_photos_are_refused(tmp_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    code, output = run(photo, "--codec", "hevc")
    assert code == 1 and "only apply to videos" in output


def noisy_disparity(truth, rng):
    """What a per-frame depth model gives on a still shot: the right map plus small jitter,
    renormalised each frame."""
    return Disparity(normalize(truth + rng.normal(0, 0.03, truth.shape).astype(np.float32)))


def right_views(frames, disparities, engine):
    for frame, disparity in zip(frames, disparities):
        shift = (disparity.values * 0.03 * frame.shape[1]).astype(np.float32)
        yield engine.render(StereoRequest(frame, disparity.values, shift)).right


def test_smoothing_keeps_the_warp_still_on_a_static_clip(tmp_path):
    clip = tmp_path / "still.mp4"
    make_clip(clip, frames=20, motion=0, audio=False)
    with VideoReader(clip) as reader:
        frames = [frame.pixels for frame in reader.frames()]
    truth = normalize(render_scene(WIDTH, HEIGHT).disparity)
    engine = WarpEngine()
    raw = [noisy_disparity(truth, np.random.default_rng(seed)) for seed in range(len(frames))]
    smoother = TemporalSmoother()
    smoothed = [smoother(frame, disparity) for frame, disparity in zip(frames, raw)]
    input_flicker = flicker(frames)
    raw_flicker = flicker(right_views(frames, raw, engine))
    smooth_flicker = flicker(right_views(frames, smoothed, engine))
    exact_flicker = flicker(right_views(frames, [Disparity(truth)] * len(frames), engine))
    assert smoother.cuts == 0
    # Measured: the still clip's own flicker 1.3e-6; exact disparity 1.3e-6 (the warp adds none);
    # jittery per-frame disparity 0.0018 raw, 0.00057 smoothed (weight 0.4).
    assert exact_flicker < input_flicker + 1e-4
    assert smooth_flicker < 0.5 * raw_flicker
    assert smooth_flicker < 0.001


def test_scene_cut_restarts_the_average():
    smoother = TemporalSmoother(weight=0.4)
    dark, bright = np.zeros((32, 32, 3), np.float32), np.ones((32, 32, 3), np.float32)
    first, second = Disparity(np.zeros((32, 32), np.float32)), Disparity(np.ones((32, 32), np.float32))
    smoother(dark, first)
    assert np.allclose(smoother(dark, second).values, 0.4)  # same shot: averaged
    assert np.allclose(smoother(bright, second).values, 1.0)  # cut: the new frame's disparity alone
    assert smoother.cuts == 1


def test_convert_video_streams_with_a_synthetic_disparity_provider(tmp_path):
    clip = tmp_path / "pan.mp4"
    make_clip(clip, frames=8, audio=False)
    truth = normalize(render_scene(WIDTH, HEIGHT).disparity)
    calls = []

    def disparity_for(source, picture):
        calls.append(picture.size)
        return Disparity(truth)

    out = tmp_path / "pan_HSBS.mp4"
    result = convert_video(Job(clip, [out]), ConvertSettings(layout="hsbs"), WarpEngine(), disparity_for,
                           VideoSettings(crf=23), progress=False)
    assert calls == [(WIDTH, HEIGHT)] * 8  # asked once per frame, frame by frame
    assert "8 frames" in result.details[0]
    frames, _, _ = decoded(out)
    assert len(frames) == 8 and frames[0].shape == (HEIGHT, WIDTH, 3)


def test_diffusion_frames_attend_to_their_shots_anchor(tmp_path, tiny_sd):
    pan = list(scene_frames(6, motion=1))
    clip = tmp_path / "cut.mp4"
    make_clip(clip, frames=6, audio=False, images=pan[:3] + [1 - frame for frame in pan[3:]])  # a cut at frame 3
    engine = make_engine(tiny_sd, steps=2, video_paint="every-frame")
    calls, render = [], engine.render

    def spy(request, **kwargs):
        calls.append(kwargs)
        return render(request, **kwargs)

    engine.render = spy
    truth = normalize(render_scene(WIDTH, HEIGHT).disparity)
    out = tmp_path / "cut_LR.mp4"
    convert_video(Job(clip, [out]), ConvertSettings(divergence=8), engine, lambda source, picture: Disparity(truth),
                  VideoSettings(crf=23), progress=False)
    assert [sorted(call) for call in calls] == [["record"], ["reference"], ["reference"]] * 2
    anchors = [call.get("record", call.get("reference")) for call in calls]
    assert anchors[1] is anchors[2] is anchors[0] and anchors[4] is anchors[5] is anchors[3]
    assert anchors[3] is not anchors[0] and len(anchors[0]) > 0  # recorded keys per step and layer
    assert len(decoded(out)[0]) == 6


def test_diffusion_engine_converts_a_clip_from_the_cli(tmp_path, tiny_sd):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=4)
    out = tmp_path / "clip_LR.mp4"
    code, output = run(clip, "--engine", "diffusion", "--model", tiny_sd, "--steps", "2",
                       "--disparity", disparity_map(tmp_path), "-o", out, "-q")
    assert code == 0, output
    frames, _, _ = decoded(out)
    assert len(frames) == 4 and frames[0].shape == (HEIGHT, 2 * WIDTH, 3)
    assert audio_packets(out) == audio_packets(clip)


def st3d_mode(path):
    """stereo_mode of the st3d box in the first video sample entry, walking the boxes from the top."""
    from sbsconvert.formats.isobmff.boxes import read_boxes

    data = path.read_bytes()
    box = next(b for b in read_boxes(data, 0, len(data)) if b.kind == b"moov")
    for kind in (b"trak", b"mdia", b"minf", b"stbl", b"stsd"):
        box = next(b for b in read_boxes(data, box.start + box.header, box.end) if b.kind == kind)
    entry = read_boxes(data, box.start + box.header + 8, box.end)[0]
    assert entry.kind in (b"avc1", b"hvc1")
    children = read_boxes(data, entry.start + entry.header + 78, entry.end)  # after the visual sample entry fields
    found = [b for b in children if b.kind == b"st3d"]
    return data[found[0].start + 12] if found else None


@pytest.mark.parametrize("layout, suffix, mode", [("sbs", ".mp4", 2), ("htb", ".mov", 1), ("anaglyph", ".mp4", None)])
def test_mp4_and_mov_carry_the_st3d_stereo_box(tmp_path, layout, suffix, mode):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=6)
    out = tmp_path / f"out{suffix}"
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", layout, "-o", out, "-q")
    assert code == 0, output
    assert st3d_mode(out) == mode  # 2 left-right, 1 top-bottom, none for anaglyph
    assert len(decoded(out)[0]) == 6 and audio_packets(out) == audio_packets(clip)  # still a valid file
    if mode is not None and shutil.which("exiftool"):
        tags = subprocess.run(["exiftool", "-s", "-Stereoscopic3D", str(out)], capture_output=True, text=True).stdout
        assert ("Left-Right" if mode == 2 else "Top-Bottom") in tags


def test_st3d_is_added_once_and_never_to_a_moov_first_file(tmp_path):
    from sbsconvert.formats.st3d import add_st3d

    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=4)
    assert add_st3d(clip, "sbs") and st3d_mode(clip) == 2
    assert not add_st3d(clip, "tb") and st3d_mode(clip) == 2
    fast = tmp_path / "fast.mp4"
    make_clip(fast, frames=4, options={"movflags": "faststart"})
    before = fast.read_bytes()
    assert not add_st3d(fast, "sbs") and fast.read_bytes() == before
