"""--format spatial for videos, end to end: one MV-HEVC file whose two views FFmpeg decodes (the
`hevc` decoder asked for all views), frame for frame and on the source's clock, the left view
alone playing as plain HEVC, audio copied, and Apple's boxes in the sample entry with their values."""

import struct

import av
import av.logging
import numpy as np
import pytest

from conftest import run
from sbsconvert.isobmff.boxes import parse_boxes
from sbsconvert.hevc.nal import PPS, SPS, NalUnit
from test_video import BAD_CLIPS, audio_packets, decoded, disparity_map, make_clip


def views(path):
    """(left frames, right frames, times) of a spatial file, decoded with every view. FFmpeg gives
    the views of each access unit in order; frame side data (the VIEW_ID PyAV cannot name) is not read."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"view_ids": "-1"}
        frames = [(frame.to_ndarray(format="rgb24").astype(np.float32) / 255, float(frame.pts * frame.time_base))
                  for frame in container.decode(stream)]
    return [f for f, _ in frames[0::2]], [f for f, _ in frames[1::2]], [t for _, t in frames[0::2]]


def track_seconds(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.duration * stream.time_base


def psnr(a, b):
    return 10 * np.log10(1 / max(np.mean((a - b) ** 2), 1e-12))


def sample_entry(path):
    (moov,) = [node for node in parse_boxes(path.read_bytes()) if node.kind == b"moov"]
    (entry,) = moov.find_all("hvc1")
    return entry


def test_spatial_clip_holds_both_views_of_every_frame(tmp_path):
    clip = tmp_path / "clip.mp4"
    times = make_clip(clip, frames=12)
    map_path = disparity_map(tmp_path)
    code, output = run(clip, "--disparity", map_path, "-f", "spatial", "-q")
    assert code == 0, output
    out = tmp_path / "clip_spatial.mp4"
    decoded_views = []
    assert ffmpeg_log(lambda: decoded_views.append(views(out)), av.logging.WARNING) == []  # no decoder complaint
    left, right, out_times = decoded_views[0]
    assert len(left) == len(right) == 12 and np.allclose(out_times, times, atol=1e-3)
    assert audio_packets(out) == audio_packets(clip)  # copied unchanged
    # The same eyes encoded alone (lr-pair, HEVC): each view matches its own eye, not the other.
    code, output = run(clip, "--disparity", map_path, "-f", "lr-pair", "--codec", "hevc", "-o", tmp_path / "eye.mp4")
    assert code == 0, output
    own_left, own_right = decoded(tmp_path / "eye_L.mp4")[0], decoded(tmp_path / "eye_R.mp4")[0]
    for view, own, other in ((left, own_left, own_right), (right, own_right, own_left)):
        scores = [psnr(a, b) for a, b in zip(view, own)]
        assert min(scores) >= 35, scores
        assert np.mean(scores) > np.mean([psnr(a, b) for a, b in zip(view, other)]) + 3
    assert track_seconds(out) == track_seconds(tmp_path / "eye_L.mp4")  # the last frame lasts one frame, too
    base, base_times, _ = decoded(out)  # a player without MV-HEVC support: the left eye in 2D
    assert len(base) == 12 and all(np.array_equal(a, b) for a, b in zip(base, left)) and base_times == out_times
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["clip.mp4", "map.png", "clip_spatial.mp4", "eye_L.mp4", "eye_R.mp4"])  # no raw stream or temp file left


def lhvc_parameter_sets(payload):
    """(NAL type, nuh_layer_id) of each parameter set in an lhvC box (ISO/IEC 14496-15 9.6.3)."""
    offset, found = 6, []  # version, segmentation, parallelism, temporal/length fields
    for _ in range(payload[5]):  # numOfArrays
        count = struct.unpack_from(">H", payload, offset + 1)[0]
        offset += 3
        for _ in range(count):
            length = struct.unpack_from(">H", payload, offset)[0]
            unit = NalUnit.from_bytes(payload[offset + 2 : offset + 2 + length])
            found.append((unit.type, unit.layer_id))
            offset += 2 + length
    return found


@pytest.mark.parametrize("options, baseline, hfov", [([], 64000, 60000), (["--baseline-mm", "19.24", "--hfov", "63.4"], 19240, 63400)])
def test_sample_entry_carries_apple_stereo_boxes(tmp_path, options, baseline, hfov):
    clip = tmp_path / "clip.mov"
    make_clip(clip, frames=4, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "spatial", *options, "-q")
    assert code == 0, output
    entry = sample_entry(tmp_path / "clip_spatial.mov")
    assert entry.find("hvcC") is not None
    assert set(lhvc_parameter_sets(entry.find("lhvC").payload)) == {(SPS, 1), (PPS, 1)}
    assert entry.find("vexu/eyes/stri").payload == b"\x00\x00\x00\x00\x03"  # left and right views
    assert entry.find("vexu/eyes/hero").payload == b"\x00\x00\x00\x00\x01"  # hero eye: left
    assert entry.find("vexu/eyes/cams/blin").payload == b"\x00\x00\x00\x00" + struct.pack(">I", baseline)  # micrometres
    assert entry.find("vexu/proj/prji").payload == b"\x00\x00\x00\x00rect"
    assert entry.find("hfov").payload == struct.pack(">I", hfov)  # thousandths of a degree
    # FFmpeg's reader of Apple's boxes takes each one where it is (it warns of any box it does
    # not expect in vexu or eyes, and fails on a malformed cams).
    assert [line for line in ffmpeg_log_opening(tmp_path / "clip_spatial.mov") if "Unknown" in line] == []


def ffmpeg_log(action, level=av.logging.VERBOSE):
    """What FFmpeg logs (at `level` and above) while `action()` runs."""
    previous = av.logging.get_level()
    av.logging.set_level(level)
    try:
        with av.logging.Capture() as logs:
            action()
    finally:
        av.logging.set_level(previous)
    return [message for _, _, message in logs]


def ffmpeg_log_opening(path):
    return ffmpeg_log(lambda: av.open(str(path)).close())


def test_ten_bit_spatial_video_from_a_matroska_source(tmp_path):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=5)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "spatial", "--pix-fmt", "yuv420p10le",
                       "--crf", "24", "-q")
    assert code == 0, output
    out = tmp_path / "clip_spatial.mov"  # Matroska cannot hold Apple's boxes: QuickTime instead
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"view_ids": "-1"}
        frames = list(container.decode(stream))
    assert len(frames) == 10 and {frame.format.name for frame in frames} == {"yuv420p10le"}
    assert audio_packets(out) == audio_packets(clip)
    left, right, _ = views(out)
    source = decoded(clip)[0]
    assert min(psnr(a, b) for a, b in zip(left, source)) > 30  # the left eye is the input


def test_vision_pro_preset_writes_spatial_video(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "--preset", "vision-pro", "-q")
    assert code == 0, output
    left, right, _ = views(tmp_path / "clip_spatial.mp4")
    assert len(left) == len(right) == 3
    # 8 bits from an 8-bit source, as the iPhone records it and as the Multiview Main profile of layer 1 allows.
    with av.open(str(tmp_path / "clip_spatial.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize("options, message", [
    (["--frames-out"], "--frames-out cannot hold it"),
    (["--codec", "h264"], "drop --codec h264"),
    (["-o", "out.mkv"], "writes a .mov, .mp4, .m4v file"),
    (["--hfov", "180"], "not in the range"),
])
def test_bad_spatial_combinations_write_nothing(tmp_path, options, message):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=2, audio=False)
    map_path = disparity_map(tmp_path)
    before = sorted(tmp_path.iterdir())
    options = [str(tmp_path / o) if o.startswith("out.") else o for o in options]
    code, output = run(clip, "--disparity", map_path, "-f", "spatial", *options)
    assert code != 0 and output.count("\n") == 1 and message in output and "Traceback" not in output
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("name", ["truncated.mp4", "cut.mp4"])
def test_a_source_failing_midway_leaves_nothing(tmp_path, name):
    """The eyes were partly encoded and assembled when decoding fails: neither the output nor the
    raw two-view stream beside it remains."""
    make, message = BAD_CLIPS[name]
    make(tmp_path / name)
    map_path = disparity_map(tmp_path)
    code, output = run(tmp_path / name, "--disparity", map_path, "-f", "spatial")
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and message in errors[0], output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "map.png"])


def test_stray_camera_options_are_refused(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=2, audio=False)
    map_path = disparity_map(tmp_path)
    code, output = run(clip, "--disparity", map_path, "--hfov", "50")
    assert code == 1 and "--hfov only apply to --format spatial" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "map.png"]


def test_an_album_of_photos_and_videos_becomes_spatial_photos_and_videos(tmp_path):
    album, maps = tmp_path / "album", tmp_path / "maps"
    album.mkdir()
    maps.mkdir()
    make_clip(album / "clip.mp4", frames=3, audio=False)
    disparity_map(tmp_path).rename(album / "photo.png")  # any picture will do as the photo
    for stem in ("clip", "photo"):
        disparity_map(tmp_path).rename(maps / f"{stem}.png")
    code, output = run(album, "--disparity", maps, "-f", "spatial", "-q")
    assert code == 0, output
    out = tmp_path / "album_stereo"
    assert sorted(p.name for p in out.iterdir()) == ["clip_spatial.mp4", "photo_spatial.heic"]
    left, right, _ = views(out / "clip_spatial.mp4")
    assert len(left) == len(right) == 3
