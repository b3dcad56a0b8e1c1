"""Stereo MPO output: two JPEG frames (left, right) in one file, typed as a CIPA disparity image."""

import io
import json
import os
import shutil
import struct
import subprocess

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, TiffImagePlugin

from conftest import SYNTHETIC, SYNTHETIC_DISP, run
from sbsconvert.decode import load_picture
from sbsconvert.errors import SbsError
from sbsconvert.jobs import images_in_folder, plan_jobs
from sbsconvert.mpo import is_stereo_mpo, write_mpo

HEIGHT, WIDTH = 48, 64


def smooth_views():
    """Two clearly different, smooth views (JPEG keeps smooth content within a few code values)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    left = np.stack([x / WIDTH, y / HEIGHT, np.full_like(x, 0.2)], axis=2)
    right = np.stack([np.full_like(x, 0.8), 1 - y / HEIGHT, x / WIDTH], axis=2)
    return left, right


def frames_of(path):
    """Decoded frames of an MPO as float arrays, with each frame's own MPF header bytes."""
    frames = []
    with Image.open(path) as image:
        assert image.format == "MPO"
        for number in range(image.n_frames):
            image.seek(number)
            frames.append((np.asarray(image.convert("RGB"), np.float32) / 255, image.info["mp"], dict(image.info)))
    return frames


def attribute_ifd(header):
    """The MP Attribute IFD (the last IFD in the chain) of one frame's MPF header."""
    stream = io.BytesIO(header)
    offset = TiffImagePlugin.ImageFileDirectory_v2(stream.read(8)).next
    while offset:
        stream.seek(offset)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(header[:8])
        ifd.load(stream)
        offset = ifd.next
    return dict(ifd)


def test_frames_are_the_left_then_the_right_view(tmp_path):
    left, right = smooth_views()
    target = tmp_path / "pair.mpo"
    write_mpo([left, right], target, force=False)
    frames = frames_of(target)
    assert len(frames) == 2
    for (pixels, _, _), view in zip(frames, (left, right)):
        assert pixels.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(pixels - view).mean() < 1.5 / 255 and np.abs(pixels - view).max() < 8 / 255
    assert np.abs(frames[0][0] - right).mean() > 0.2  # the eyes really differ, so the order is tested
    assert os.listdir(tmp_path) == ["pair.mpo"]  # no temp file left behind


def test_mp_index_types_both_images_as_disparity_with_right_offsets(tmp_path):
    target = tmp_path / "pair.mpo"
    write_mpo(list(smooth_views()), target, force=False)
    data = target.read_bytes()
    with Image.open(target) as image:
        assert image.n_frames == 2
        info = image.mpinfo
    assert info[0xB000] == b"0100" and info[0xB001] == 2
    first, second = info[0xB002]
    for entry in (first, second):
        assert entry["Attribute"]["MPType"] == "Multi-Frame Image: (Disparity)"
        assert entry["Attribute"]["ImageDataFormat"] == "JPEG"
    assert first["Attribute"]["RepresentativeImageFlag"] and not second["Attribute"]["RepresentativeImageFlag"]
    assert first["DataOffset"] == 0
    # Offsets count from the byte-order mark of the first image's MPF header.
    header_at = data.index(b"MPF\x00") + 4
    second_at = header_at + second["DataOffset"]
    assert second_at == first["Size"] and first["Size"] + second["Size"] == len(data)
    assert data[:2] == data[second_at : second_at + 2] == b"\xff\xd8"
    assert data[second_at - 2 : second_at] == data[-2:] == b"\xff\xd9"
    # Raw MP Type codes (Pillow shows names): 0x020002, plus the representative flag on image 1.
    table = data[header_at:]
    count = struct.unpack_from("<H", table, 8)[0]
    tags = {struct.unpack_from("<H", table, 10 + 12 * n)[0]: 10 + 12 * n for n in range(count)}
    entries_at = struct.unpack_from("<L", table, tags[0xB002] + 8)[0]
    assert [struct.unpack_from("<L", table, entries_at + 16 * n)[0] for n in range(2)] == [0x20020002, 0x00020002]


def test_attribute_ifds_number_the_viewpoints_from_the_left(tmp_path):
    target = tmp_path / "pair.mpo"
    write_mpo(list(smooth_views()), target, force=False)
    attributes = [attribute_ifd(header) for _, header, _ in frames_of(target)]
    assert [a[0xB101] for a in attributes] == [1, 2]  # MPIndividualNum
    assert [a[0xB204] for a in attributes] == [1, 1]  # BaseViewpointNum: the left eye
    assert all(a[0xB000] == b"0100" for a in attributes)
    assert all(float(a[0xB205]) == 0.0 for a in attributes)  # ConvergenceAngle: parallel axes
    assert float(attributes[0][0xB206]) == 0.0  # BaselineLength of the base viewpoint to itself


def test_exif_goes_with_the_first_image_and_the_colour_profile_with_both(tmp_path):
    left, right = smooth_views()
    exif = Image.Exif()
    exif[0x0132] = "2026:11:25 10:00:00"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    target = tmp_path / "pair.mpo"
    write_mpo([left, right], target, force=False, exif=exif.tobytes(), icc_profile=icc)
    (_, _, first), (_, _, second) = frames_of(target)
    assert first["icc_profile"] == icc and second["icc_profile"] == icc
    with Image.open(target) as image:
        assert image.getexif()[0x0132] == "2026:11:25 10:00:00"
    assert "exif" not in second


def test_quality_and_alpha(tmp_path):
    rng = np.random.default_rng(0)
    noisy = rng.random((HEIGHT, WIDTH, 4)).astype(np.float32)  # noise makes the size follow the quality
    write_mpo([noisy, noisy], tmp_path / "high.mpo", force=False, quality=95)
    write_mpo([noisy, noisy], tmp_path / "low.mpo", force=False, quality=40)
    assert (tmp_path / "low.mpo").stat().st_size < 0.6 * (tmp_path / "high.mpo").stat().st_size
    pixels, _, _ = frames_of(tmp_path / "high.mpo")[0]
    assert pixels.shape == (HEIGHT, WIDTH, 3)  # alpha composited over black, as for .jpg


def test_cli_writes_the_pair_into_one_mpo(tmp_path):
    out = tmp_path / "out.mpo"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "mpo", "-o", out)
    assert code == 0, output
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "lr-pair", "-o", tmp_path / "ref.png")
    assert code == 0, output
    (left, _, _), (right, _, _) = frames_of(out)
    for frame, reference in ((left, tmp_path / "ref_L.png"), (right, tmp_path / "ref_R.png")):
        expected = load_picture(reference).pixels
        assert frame.shape == expected.shape == (240, 320, 3)
        assert np.abs(frame - expected).mean() < 2 / 255
    assert is_stereo_mpo(out)
    # Reading an .mpo back as an INPUT gives its first frame, the left view.
    assert np.abs(load_picture(out).pixels - load_picture(SYNTHETIC).pixels).mean() < 2 / 255


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "out.mpo"
    out.write_bytes(b"precious")
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "mpo", "-o", out)
    assert code == 1 and "already exists" in output and out.read_bytes() == b"precious"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "mpo", "-o", out, "--force")
    assert code == 0, output
    assert len(frames_of(out)) == 2 and sorted(os.listdir(tmp_path)) == ["out.mpo"]


def test_cli_16_bit_input_gives_8_bit_frames(tmp_path):
    deep = (load_picture(SYNTHETIC).pixels * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    assert load_picture(tmp_path / "deep.png").bit_depth == 16
    code, output = run(tmp_path / "deep.png", "--disparity", SYNTHETIC_DISP, "-f", "mpo", "--quality", "80")
    assert code == 0, output
    with Image.open(tmp_path / "deep.mpo") as image:
        for number in range(image.n_frames):
            image.seek(number)
            assert image.mode == "RGB" and image.size == (320, 240)


def test_help_mentions_mpo():
    code, output = run("--help")
    text = " ".join(output.split())  # undo the help's line wrapping
    assert code == 0 and "lr-pair|mpo" in text and "mpo: one Multi Picture Object file" in text and "(.mpo)" in text


def test_output_names(tmp_path):
    photo = tmp_path / "album" / "photo.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"")
    assert plan_jobs([photo], None, "mpo", None, False)[0].outputs == [tmp_path / "album" / "photo.mpo"]
    assert plan_jobs([photo], None, "mpo", "jpg", False)[0].outputs == [tmp_path / "album" / "photo.mpo"]
    folder_job = plan_jobs([photo.parent], None, "mpo", None, False)[0]
    assert folder_job.outputs == [tmp_path / "album_stereo" / "photo.mpo"]
    assert plan_jobs([photo], tmp_path / "x.mpo", "mpo", None, False)[0].outputs == [tmp_path / "x.mpo"]
    with pytest.raises(SbsError, match="writes a .mpo file; name it out.mpo"):
        plan_jobs([photo], tmp_path / "out.jpg", "mpo", None, False)
    with pytest.raises(SbsError, match=".mpo needs `format` mpo"):
        plan_jobs([photo], tmp_path / "out.mpo", "sbs", None, False)
    with pytest.raises(SbsError, match="drop `image_type` png"):
        plan_jobs([photo], None, "mpo", "png", False)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    with pytest.raises(SbsError, match="is for photos"):
        plan_jobs([clip], None, "mpo", None, False)


def test_folders_skip_our_stereo_mpos_and_take_others(tmp_path):
    """Ours sit beside the photo they were made from (ours.jpg -> ours.mpo); a 3D camera's stereo
    MPO (its eyes are laid out) and a 2D one are taken."""
    left, right = smooth_views()
    write_mpo([left, right], tmp_path / "ours.mpo", force=False)
    write_mpo([left, right], tmp_path / "DSCF0001.MPO", force=False)
    Image.fromarray((left * 255).astype(np.uint8)).save(tmp_path / "ours.jpg")
    # An MPO that is not a stereo pair (Pillow types it "Baseline MP Primary Image" + "Undefined").
    image = Image.fromarray((left * 255).astype(np.uint8))
    image.save(tmp_path / "camera.mpo", "MPO", save_all=True, append_images=[image])
    assert not is_stereo_mpo(tmp_path / "camera.mpo")
    assert images_in_folder(tmp_path, recursive=False) == [
        tmp_path / "camera.mpo", tmp_path / "DSCF0001.MPO", tmp_path / "ours.jpg"]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_reads_a_valid_disparity_mpo(tmp_path):
    target = tmp_path / "pair.mpo"
    write_mpo(list(smooth_views()), target, force=False)
    report = subprocess.run(
        ["exiftool", "-j", "-a", "-ee", "-G3:1", "-validate", "-MPF:all", str(target)],
        capture_output=True, text=True, check=True,
    )
    (tags,) = json.loads(report.stdout)
    assert tags["ExifTool:Validate"] == "OK"
    assert tags["MPImage1:MPImageType"] == tags["MPImage2:MPImageType"] == "Multi-frame Disparity"
    assert tags["MPImage1:MPImageFlags"] == "Representative image"
    assert tags["MPImage2:MPImageStart"] == tags["MPImage1:MPImageLength"]  # exiftool resolves the offset
    assert tags["MPF0:MPIndividualNum"] == 1 and tags["Doc2:MPF0:MPIndividualNum"] == 2
    assert tags["MPF0:BaseViewpointNum"] == tags["Doc2:MPF0:BaseViewpointNum"] == 1
