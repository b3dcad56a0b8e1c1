"""--format spatial for videos, end to end: one MV-HEVC file whose two views FFmpeg decodes (the
`hevc` decoder asked for all views), frame for frame and on the source's clock, the left view
alone playing as plain HEVC, audio copied, and Apple's boxes in the sample entry with their values."""

import re
import struct

import av
import av.filter
import av.logging
import numpy as np
import pytest
from pymediainfo import MediaInfo

from conftest import run
from sbsconvert.formats.hevc.bits import BitReader
from sbsconvert.formats.hevc.nal import (CRA_NUT, HVCC_ARRAYS, IDR_N_LP, LHVC_ARRAYS, PPS, PREFIX_SEI, SPS, VPS,
                                         config_record_units, length_prefixed_units)
from sbsconvert.formats.hevc.sei import ReferenceDisplays, parse_reference_displays
from sbsconvert.formats.isobmff.boxes import parse_boxes
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


@pytest.mark.parametrize("options, baseline, hfov", [([], 64000, 60000), (["--baseline-mm", "19.24", "--hfov", "63.4"], 19240, 63400)])
def test_sample_entry_carries_apple_stereo_boxes(tmp_path, options, baseline, hfov):
    clip = tmp_path / "clip.mov"
    make_clip(clip, frames=4, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "spatial", *options, "-q")
    assert code == 0, output
    entry = sample_entry(tmp_path / "clip_spatial.mov")
    assert entry.find("hvcC") is not None
    lhvc = config_record_units(entry.find("lhvC").payload, LHVC_ARRAYS)
    assert {(unit.type, unit.layer_id) for unit in lhvc} == {(SPS, 1), (PPS, 1)}
    assert entry.find("vexu/eyes/stri").payload == b"\x00\x00\x00\x00\x03"  # left and right views
    assert entry.find("vexu/eyes/hero").payload == b"\x00\x00\x00\x00\x01"  # hero eye: left
    assert entry.find("vexu/eyes/cams/blin").payload == b"\x00\x00\x00\x00" + struct.pack(">I", baseline)  # micrometres
    assert entry.find("vexu/proj") is None  # Apple's files have no projection box (an ordinary camera)
    # Apple's comfort box in the eyes box: a horizontal disparity adjustment of 0 (--convergence is in the pixels)
    assert entry.find("vexu/eyes/cmfy/dadj").payload == b"\x00\x00\x00\x00" + struct.pack(">i", 0)
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


# What Apple's encoder (AVFoundation/VideoToolbox, an 8-bit 4:2:0 spatial video) writes, for the
# fields below: the SEI of its hvcC, the layer-1 PTL's constraint bits, its sync sample group.
APPLE_3D_REFERENCE_DISPLAYS_SEI = bytes.fromhex("4e01b004040d002080")
APPLE_8_BIT_420_CONSTRAINTS = 0b11111 << 38  # max_12bit, max_10bit, max_8bit, max_422chroma, max_420chroma
TEN_BIT_420_CONSTRAINTS = 0b11011 << 38  # the same but max_8bit (Multiview Main 10)
APPLE_SYNC_GROUP_DESCRIPTION = bytes.fromhex("0100000073796e63000000010000000115")  # sgpd: NAL type 21 (CRA)
SECONDS_1904_TO_1970 = 2082844800


def layer1_profile(vps):
    """(general_profile_idc, the 43 constraint bits, direct_dependency_flag[1][0]) of layer 1 in
    a two-layer multiview VPS RBSP laid out as FFmpeg reads it (F.7.3.2.1.1: one PTL with a
    profile in the extension)."""
    reader = BitReader(vps)
    reader.u(4 + 2 + 6)
    sub_layers = reader.u(3)
    reader.u(1 + 16 + 96)
    for _ in range(0 if reader.u(1) else sub_layers, sub_layers + 1):
        reader.ue(), reader.ue(), reader.ue()
    max_layer_id, layer_sets = reader.u(6), reader.ue()
    reader.u(layer_sets * (max_layer_id + 1))
    if reader.u(1):  # timing info
        reader.u(64)
        if reader.u(1):
            reader.ue()
        assert reader.ue() == 0
    assert reader.u(1) == 1  # vps_extension_flag
    while not reader.byte_aligned():
        reader.u(1)
    reader.u(8)  # PTL 1: level
    assert reader.u(1) == 0 and reader.u(16) == 0x4000  # no splitting, multiview
    id_bits = reader.u(3) + 1
    nuh_ids = reader.u(1)
    reader.u(6 * nuh_ids + id_bits)
    view_bits = reader.u(4)
    reader.u(2 * view_bits)
    dependent = reader.u(1)
    if not dependent:
        reader.ue()  # num_add_layer_sets
    reader.u(3)
    assert reader.ue() == 2 and reader.u(1) == 1  # PTL 2, with a profile
    reader.u(2 + 1)
    profile = reader.u(5)
    reader.u(32 + 4)
    return profile, reader.u(43), dependent


def full_box_dates(payload):
    """(creation, modification) times of an mvhd/tkhd/mdhd payload, in seconds since 1904."""
    return struct.unpack_from(">QQ", payload, 4) if payload[0] == 1 else struct.unpack_from(">II", payload, 4)


def edits(track):
    """(segment duration, media time) of a track's edit list; media time -1 is an empty edit."""
    payload = track.find("edts/elst").payload
    version, count = payload[0], struct.unpack_from(">I", payload, 4)[0]
    fields = ">Qq" if version else ">Ii"
    size = struct.calcsize(fields) + 4
    return [struct.unpack_from(fields, payload, 8 + index * size) for index in range(count)]


def tracks(path):
    (moov,) = [node for node in parse_boxes(path.read_bytes()) if node.kind == b"moov"]
    return moov, {track.find("mdia/hdlr").payload[8:12]: track for track in moov.find_all("trak")}


def frame_views(path):
    """The eye FFmpeg's decoder marks on each decoded view (frame side data STEREO3D, which PyAV
    cannot read: its showinfo filter logs it), in decoding output order."""

    def decode():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"view_ids": "-1"}
            graph = None
            for frame in container.decode(stream):
                if graph is None:
                    graph = av.filter.Graph()
                    graph.link_nodes(graph.add_buffer(template=stream), graph.add("showinfo"), graph.add("buffersink"))
                    graph.configure()
                graph.push(frame)
                graph.pull()

    return re.findall(r"view - (\w+)", "".join(ffmpeg_log(decode, av.logging.INFO)))


def first_sample_units(path):
    """The NAL units of the video track's first sample (4-byte lengths)."""
    with av.open(str(path)) as container:
        return list(length_prefixed_units(bytes(next(packet for packet in container.demux(video=0) if packet.size))))


@pytest.mark.parametrize("suffix, pixel_format", [(".mp4", "yuv420p"), (".mov", "yuv420p"), (".mp4", "yuv420p10le"),
                                                  (".mov", "yuv420p10le")])
def test_vision_pro_file_carries_what_apples_encoder_writes(tmp_path, suffix, pixel_format):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=6)
    out = tmp_path / f"out{suffix}"
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "--preset", "vision-pro", "--pix-fmt", pixel_format,
                       "-o", out, "-q")
    assert code == 0, output
    entry = sample_entry(out)
    units = list(config_record_units(entry.find("hvcC").payload, HVCC_ARRAYS))
    # The eyes are named in hvcC's SEI array, as Apple's encoder names them, and FFmpeg marks each view.
    (sei,) = [unit for unit in units if unit.type == PREFIX_SEI]
    assert sei.to_bytes() == APPLE_3D_REFERENCE_DISPLAYS_SEI
    assert parse_reference_displays(sei) == ReferenceDisplays(left_view_id=0, right_view_id=1)
    assert frame_views(out) == ["left", "right"] * 6
    # Layer 1's profile: Multiview Main with the format's constraint flags (not "Multiview Main 16").
    (vps,) = [unit for unit in units if unit.type == VPS]
    expected = APPLE_8_BIT_420_CONSTRAINTS if pixel_format == "yuv420p" else TEN_BIT_420_CONSTRAINTS
    assert layer1_profile(vps.rbsp) == (6, expected, 1)
    # ... which layer 1's SPS leaves to the VPS, as Apple's does (a multi-layer SPS has no PTL).
    (layer1_sps,) = [unit for unit in config_record_units(entry.find("lhvC").payload, LHVC_ARRAYS) if unit.type == SPS]
    assert layer1_sps.layer_id == 1 and (layer1_sps.rbsp[0] >> 1) & 7 == 7  # sps_ext_or_max_sub_layers_minus1
    # Layer 1 starts with a CRA picture, beside the base layer's IDR picture, marked as Apple marks it.
    assert [(unit.type, unit.layer_id) for unit in first_sample_units(out) if unit.is_vcl] == [(IDR_N_LP, 0), (CRA_NUT, 1)]
    moov, by_handler = tracks(out)
    table = by_handler[b"vide"].find("mdia/minf/stbl")
    assert table.child(b"sgpd").payload == APPLE_SYNC_GROUP_DESCRIPTION
    assert table.child(b"sbgp").payload == bytes.fromhex("0000000073796e63" "00000002" "0000000100000001" "0000000500000000")
    # Real dates: the source's own time (its file's, when it names none), not 0.
    made = int(clip.stat().st_mtime) + SECONDS_1904_TO_1970
    for node in (moov.child(b"mvhd"), by_handler[b"vide"].child(b"tkhd"), by_handler[b"vide"].find("mdia/mdhd")):
        assert full_box_dates(node.payload) == (made, made)
    # The first picture is shown at media time 0: one edit from 0, no empty edit before it.
    assert [media for _, media in edits(by_handler[b"vide"])] == [0]
    assert all(media >= 0 for _, media in edits(by_handler[b"soun"]))
    assert views(out)[2][0] == 0
    # An independent reader (MediaInfo, as bundled by pymediainfo) names the profile as it names
    # Apple's own file ("Multiview Main@L2@Main"), not "Multiview Main 16".
    (video,) = [track for track in MediaInfo.parse(out).tracks if track.track_type == "Video"]
    assert video.format_profile.split("@")[0] == ("Multiview Main" if pixel_format == "yuv420p" else "Multiview Main 10")


def test_a_late_first_picture_still_starts_the_file(tmp_path):
    """A source whose video starts 83 ms in (as a phone's may): the spatial file starts with its
    first picture, its audio moved along (what came before the picture is cut by the edit list)."""
    clip = tmp_path / "clip.mov"
    times = make_clip(clip, frames=12, pts=[25 + 10 * index for index in range(12)])
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "spatial", "-q")
    assert code == 0, output
    out = tmp_path / "clip_spatial.mov"
    _, by_handler = tracks(out)
    for track in by_handler.values():
        assert all(media >= 0 for _, media in edits(track))  # no empty edit
    left, right, out_times = views(out)
    assert len(left) == len(right) == 12 and np.allclose(out_times, np.array(times) - times[0], atol=1e-3)
    with av.open(str(out)) as container:
        first_audio = next(container.decode(audio=0))
        assert float(first_audio.pts * first_audio.time_base) == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("structure", ["apple", "independent"])
def test_each_layer_structure_decodes_as_two_views(tmp_path, structure):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=8, audio=False)
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "spatial", "--mvhevc-structure", structure,
                       "-q")
    assert code == 0, output
    out = tmp_path / "clip_spatial.mp4"
    decoded_views = []
    assert ffmpeg_log(lambda: decoded_views.append(views(out)), av.logging.WARNING) == []
    left, right, _ = decoded_views[0]
    assert len(left) == len(right) == 8
    first = [unit.type for unit in first_sample_units(out) if unit.is_vcl and unit.layer_id == 1]
    (vps,) = [unit for unit in config_record_units(sample_entry(out).find("hvcC").payload, HVCC_ARRAYS) if unit.type == VPS]
    table = tracks(out)[1][b"vide"].find("mdia/minf/stbl")
    if structure == "apple":
        assert first == [CRA_NUT] and layer1_profile(vps.rbsp)[2] == 1 and table.child(b"sgpd") is not None
    else:  # no reference layer, an IDR picture in both layers, no sample group needed
        assert first == [IDR_N_LP] and layer1_profile(vps.rbsp)[2] == 0 and table.child(b"sgpd") is None
