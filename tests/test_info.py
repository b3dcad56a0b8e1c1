"""`sbsconvert info`: on each kind of file sbsconvert writes and reads, what the file says about its
stereo (and nothing else), the verdicts for Apple and Quest, --json, and one line with exit 1 for a
file that cannot be read (empty, text, cut off), never a traceback; files are left as they were."""

import hashlib
import json
import shutil
import struct

import pytest
from click.testing import CliRunner

from conftest import SAMPLES, run
from sbsconvert.cli import main
from sbsconvert.formats.isobmff.boxes import Box, box, full_box, parse_boxes
from sbsconvert.formats.hevc.sei import sei_payload_types
from sbsconvert.info import apple_boxes, config_sei, layer_profiles, name_layout
from sbsconvert.output import write_mpo
from sbsconvert.spatial_photo import StereoCameras, write_spatial_heic
from test_stereo_sources import NO_MODEL, photo_eyes, visionos1_heic
from test_video import disparity_map, make_clip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file of each kind: ours (side by side MP4 with st3d, half side by side MKV with
    StereoMode, spatial video, spatial photo, MPO) and others (2D photo and video, a visionOS 1
    spatial photo)."""
    folder = tmp_path_factory.mktemp("info")
    clip = folder / "clip.mp4"
    make_clip(clip, frames=6)
    depth = ["--disparity", disparity_map(folder), "-q"]
    for layout, name in (("sbs", "clip_LR.mp4"), ("hsbs", "clip_HSBS.mkv"), ("spatial", "clip_spatial.mov")):
        code, output = run(clip, *depth, "-f", layout, "-o", folder / name)
        assert code == 0, output
    left, right = photo_eyes()
    write_spatial_heic([left, right], folder / "photo_spatial.heic", force=False, cameras=StereoCameras(19.24, 63.4))
    write_mpo([left, right], folder / "DSCF0001.mpo", force=False)
    shutil.copy(SAMPLES / "chelsea.jpg", folder / "chelsea.jpg")
    visionos1_heic(folder / "IMG_0003.HEIC", left, right)
    return folder


# The decoder configuration records of a spatial video made by Apple's encoder (docs/spatial.md):
# hvcC with the VPS (layer 1's profile in its extension), SPS, PPS and the SEI naming the views,
# and lhvC with layer 1's multi-layer SPS (no profile of its own) and PPS.
APPLE_HVCC = bytes.fromhex(
    "010160000000b000000000003cf000fcfdf8f800000b04a00001003e40010c11ffff016000000300b0000003000003003c15c15b3c2000"
    "28245970602000000bf800000300000303c8d00a00080a01e5c52bf708501010100080a10001001d420101016000000300b00000030000"
    "03003ca01420207cb8815ee45951a2000100074401c02cbc14c9a7000100094e01b004040d002080")
APPLE_LHVC = bytes.fromhex("01f000fccb02a10001000942090e822e458a9404a20001000944094802cbc14da805")
# lhvC of our spatial video before layer 1's SPS took the multi-layer form: its own PTL, saying Main.
FULL_SPS_LHVC = bytes.fromhex("01f000fccf02a10001002b42090101600000030090000003000003003c48028203c596566924cae6a02020"
                              "2080000003008000000f04a200010008440948172b462400")


def info(*args):
    result = CliRunner().invoke(main, ["info", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_side_by_side_videos_say_so_in_st3d_and_stereo_mode(files):
    code, out, err = info(files / "clip_LR.mp4", files / "clip_HSBS.mkv")
    assert code == 0 and err == "", err
    mp4, mkv = out.split("\n" + str(files / "clip_HSBS.mkv"))
    assert "video, h264, High, 192x64, 6 frames, 0.2 s, 30 fps, 8 bit" in mp4 and "audio, aac" in mp4
    assert "st3d: left-right (left first)" in mp4 and "name: _LR (side by side)" in mp4
    assert "Quest: plays as side by side because st3d says left-right" in mp4
    assert "Apple: spatial video: no, because it is not MV-HEVC with two views" in mp4
    assert "Matroska / WebM" in mkv and "matroska stereo mode: left_right" in mkv and "st3d" not in mkv
    assert "name: _HSBS (half side by side)" in mkv
    assert "Quest: plays as side by side because Matroska StereoMode says left_right" in mkv


def test_spatial_video_views_eyes_and_apple_boxes(files):
    code, out, _ = info(files / "clip_spatial.mov")
    assert code == 0
    for line in ("video, hevc, Main, 96x64, 6 frames", "mv hevc views: 2",
                 "layer profiles: layer 0: Main, layer 1: Multiview Main\n",
                 "sei: 3D reference displays info (hvcC): left view 0, right view 1, user data unregistered",
                 "base view: left eye", "vexu eye views: left and right", "baseline mm: 64.0", "hfov degrees: 60.0",
                 "Apple: spatial video: yes, because it has two MV-HEVC views and Apple's vexu"):
        assert line in out, out
    assert "Quest: shows the base view (left eye) in 2D" in out
    assert "projection" not in out  # Apple's spatial files carry no proj box; nor do ours


def test_spatial_photos_ours_and_visionos1(files):
    code, out, _ = info(files / "photo_spatial.heic", files / "IMG_0003.HEIC")
    assert code == 0
    ours, vision = out.split("\n" + str(files / "IMG_0003.HEIC"))
    assert "photo, HEIF (brand heic)" in ours and "image, HEVC, 240x160, 8 bit, primary" in ours
    assert "heif stereo group: ster: items" in ours and "baseline mm: 19.24" in ours and "hfov degrees: 63.4" in ours
    assert "disparity adjustment" not in ours
    assert "Apple: spatial photo: yes" in ours and "Quest: shows the primary (left) image in 2D" in ours
    # visionOS 1 keeps its camera in uuid properties: read all the same
    assert "baseline mm: 63.774" in vision and "hfov degrees: 80.0" in vision
    assert "disparity adjustment: +293 (ten-thousandths of the width: +2.93 %)" in vision
    assert "Apple: spatial photo: yes" in vision


def test_mpo_and_2d_files(files):
    code, out, _ = info(files / "DSCF0001.mpo", files / "chelsea.jpg", files / "clip.mp4")
    assert code == 0
    mpo, photo, video = out.split("\n" + str(files))[0], *out.split("\n" + str(files))[1:]
    assert "image, JPEG, 240x160, RGB, 2 images" in mpo and "mpo stereo: multi-view disparity images" in mpo
    assert "Quest: stereo photo viewers that read MPO show it in 3D" in mpo
    assert "Apple: spatial photo: no" in mpo
    for flat in (photo, video):
        assert "stereo: nothing in the file says so" in flat and "name: no layout suffix" in flat
        assert "Quest: plays in 2D: no stereo tag, and the name ends with no layout suffix" in flat
    assert "Apple: spatial video: no" in video and "Apple: spatial photo: no" in photo


def test_json_has_the_stereo_fields(files):
    code, out, _ = info("--json", files / "clip_spatial.mov", files / "clip_LR.mp4", files / "IMG_0003.HEIC")
    assert code == 0
    spatial, sbs, vision = json.loads(out)
    assert spatial["kind"] == "video" and spatial["name_layout"] == "spatial"
    assert spatial["stereo"]["mv_hevc_views"] == 2 and spatial["stereo"]["baseline_mm"] == 64.0
    assert spatial["stereo"]["hfov_degrees"] == 60.0 and spatial["stereo"]["base_view"] == "left eye"
    assert spatial["streams"][0]["codec"] == "hevc" and spatial["streams"][0]["bit_depth"] == 8
    assert spatial["apple"].startswith("spatial video: yes")
    assert sbs["stereo"] == {"st3d": "left-right (left first)"} and sbs["name_layout"] == "sbs"
    assert vision["stereo"]["baseline_mm"] == 63.774 and vision["stereo"]["disparity_adjustment"].startswith("+293")


def test_bad_files_give_one_line_and_exit_1(files, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video\n")
    for name in ("clip_LR.mp4", "clip_HSBS.mkv", "photo_spatial.heic", "chelsea.jpg", "DSCF0001.mpo"):
        data = (files / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
    for path in sorted(tmp_path.iterdir()):
        code, out, err = info(path)
        assert code == 1 and out == "", (path, out)
        assert err.count("\n") == 1 and err.startswith(f"error: {path}: ") and "Traceback" not in err, err
    code, out, err = info(tmp_path / "missing.jpg")
    assert code == 1 and err == f"error: {tmp_path / 'missing.jpg'}: no such file\n"
    assert "the file is empty" in info(tmp_path / "empty.mp4")[2]
    assert "the video is truncated" in info(tmp_path / "cut_clip_HSBS.mkv")[2]  # Matroska opens cut short


def test_a_bad_file_among_good_ones_and_json(files, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, out, err = info("--json", files / "clip_LR.mp4", tmp_path / "notes.txt")
    assert code == 1 and err.startswith(f"error: {tmp_path / 'notes.txt'}: ")
    good, bad = json.loads(out)
    assert good["stereo"]["st3d"] and bad == {"path": str(tmp_path / "notes.txt"), "error": err[len("error: "):].strip()}


def test_files_are_only_read(files):
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in files.iterdir() if path.is_file()}
    for path in digests:
        info(path)
    assert digests == {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in digests}


def test_info_is_a_command_and_inputs_still_convert(files, tmp_path):
    code, output = run("--help")
    assert "sbsconvert info" in output and "info" in output.split("Other commands")[1]
    code, output = run("info", "--help")
    assert code == 0 and "info [OPTIONS] FILE..." in output and "--json" in output
    code, output = run("info")
    assert code == 2 and "Missing argument 'FILE...'" in output
    photo = tmp_path / "photo.jpg"
    shutil.copy(SAMPLES / "chelsea.jpg", photo)
    code, output = run(photo, "--disparity", SAMPLES / "disparity" / "chelsea.png", *NO_MODEL, "-q")
    assert code == 0 and (tmp_path / "photo_LR.jpg").exists(), output


def test_name_layouts_and_sei_payload_types(tmp_path):
    assert [name_layout(tmp_path / name) for name in ("a_LR.mp4", "a_l.jpg", "b_HOU.mkv", "c_spatial.heic", "plain.mp4")] \
        == ["sbs", "lr-pair", "htb", "spatial", None]
    # two SEI messages: type 5 (size 2), then type 255 + 21 = 276 as 0xFF 0x15 (size 1); trailing bits
    assert sei_payload_types(bytes([5, 2, 0xAA, 0xBB, 0xFF, 0x15, 1, 0xCC, 0x80])) == [5, 276]


def test_apple_boxes_are_reported_as_present():
    """Whatever of vexu a file has is reported: here a reversed pair, the right eye as hero, and a
    disparity adjustment (eyes > cmfy > dadj, signed, ten-thousandths of the width)."""
    eyes = box(b"eyes", b"", full_box(b"stri", 0, 0, bytes([0b1011])), full_box(b"hero", 0, 0, bytes([2])),
               box(b"cams", b"", full_box(b"blin", 0, 0, struct.pack(">I", 63774))),
               box(b"cmfy", b"", full_box(b"dadj", 0, 0, struct.pack(">i", -150))))
    entry = Box(b"hvc1", bytes(78), parse_boxes(box(b"vexu", b"", eyes) + box(b"hfov", struct.pack(">I", 80000))))
    stereo = {}
    apple_boxes(entry, stereo)
    assert stereo == {"vexu_eye_views": "left and right (reversed)", "baseline_mm": 63.774, "hfov_degrees": 80.0,
                      "disparity_adjustment": "-150 (ten-thousandths of the width: -1.50 %)"}


def test_layer_profiles_from_the_vps_and_sei_from_the_configuration_records():
    """Apple's layer-1 SPS leaves the profile to the VPS, whose extension names Multiview Main;
    the SEI in hvcC names the left and right views."""
    entry = Box(b"hvc1", bytes(78), [Box(b"hvcC", APPLE_HVCC), Box(b"lhvC", APPLE_LHVC)])
    assert layer_profiles(entry) == ["layer 0: Main", "layer 1: Multiview Main"]
    assert config_sei(entry) == ["3D reference displays info (hvcC): left view 0, right view 1"]
    # An SPS of layer 1 naming another profile than the VPS is quoted.
    entry = Box(b"hvc1", bytes(78), [Box(b"hvcC", APPLE_HVCC), Box(b"lhvC", FULL_SPS_LHVC)])
    assert layer_profiles(entry) == ["layer 0: Main", "layer 1: Multiview Main (its SPS says Main)"]
    # Without a VPS, a layer's multi-layer SPS names none.
    no_vps = APPLE_HVCC[:22] + bytes([3]) + APPLE_HVCC[23 + 3 + 2 + 0x3E :]
    entry = Box(b"hvc1", bytes(78), [Box(b"hvcC", no_vps), Box(b"lhvC", APPLE_LHVC)])
    assert layer_profiles(entry) == ["layer 0: Main", "layer 1: stated in the VPS (no VPS)"]
