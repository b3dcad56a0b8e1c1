"""Spatial photos (--format spatial): a stereo HEIC that libheif (pillow_heif) reads as two images
grouped as a stereo pair, with camera properties that parse back to the baseline and field of view."""

import math
import os

import cv2
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms

from conftest import SYNTHETIC, SYNTHETIC_DISP, run
from sbsconvert.decode import load_picture
from sbsconvert.errors import SbsError
from sbsconvert.heif.camera import parse_cmex, parse_cmin
from sbsconvert.heif.items import find_meta, item_properties, master_images
from sbsconvert.jobs import images_in_folder, plan_jobs
from sbsconvert.spatial_photo import (
    DEFAULT_HFOV,
    StereoCameras,
    add_stereo_pair,
    encode_heif,
    field_of_view_from_exif,
    is_stereo_heic,
    write_spatial_heic,
)

HEIGHT, WIDTH = 64, 96  # even, and tall enough that the encoder adds no padding


def smooth_views(channels=3):
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    left = np.stack([x / WIDTH, y / HEIGHT, np.full_like(x, 0.2)], axis=2)
    right = np.stack([np.full_like(x, 0.8), 1 - y / HEIGHT, x / WIDTH], axis=2)
    if channels == 4:
        alpha = np.clip(x / WIDTH * 2, 0, 1)[:, :, None]
        left, right = np.concatenate([left, alpha], axis=2), np.concatenate([right, alpha], axis=2)
    return left, right


def decoded(path_or_bytes):
    heif = pillow_heif.open_heif(path_or_bytes)
    return heif, [np.asarray(image, np.float32) / 255 for image in heif]


def cameras_of(data):
    """{item: (intrinsics, position)} read back with sbsconvert.heif's own parsers."""
    meta = find_meta(data)
    found = {}
    for item in master_images(meta):
        properties = {box.kind: box.payload for box in item_properties(meta, item)}
        found[item] = (parse_cmin(properties[b"cmin"])[0], parse_cmex(properties[b"cmex"])[0])
    return found


def test_two_images_left_primary_grouped_as_a_stereo_pair(tmp_path):
    left, right = smooth_views()
    target = tmp_path / "pair.heic"
    write_spatial_heic([left, right], target, force=False)
    assert os.listdir(tmp_path) == ["pair.heic"]  # no temp file left behind
    heif, (first, second) = decoded(target)
    assert len(heif) == 2 and heif.primary_index == 0 and heif.mimetype == "image/heic"
    for pixels, view in ((first, left), (second, right)):
        assert pixels.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(pixels - view).mean() < 1.5 / 255 and np.abs(pixels - view).max() < 12 / 255
    assert np.abs(first - right).mean() > 0.2  # the eyes really differ, so the order is tested
    # libheif's own reading of the grpl box: one 'ster' group, left item first.
    (group,) = heif[0].info["entity_groups"]
    assert group["type"] == "ster" and group["images"] == [0, 1]
    assert group["entities"] == master_images(find_meta(target.read_bytes()))
    assert heif[1].info["entity_groups"] == [group]


def test_camera_properties_describe_the_baseline_and_field_of_view(tmp_path):
    target = tmp_path / "pair.heic"
    write_spatial_heic(list(smooth_views()), target, force=False, cameras=StereoCameras(baseline_mm=19.2, hfov=40.0))
    (left_item, (left_intrinsics, left_position)), (right_item, (right_intrinsics, right_position)) = (
        cameras_of(target.read_bytes()).items())
    assert left_item < right_item
    assert left_position == (0, 0, 0) and right_position == (19200, 0, 0)  # micrometres
    for intrinsics in (left_intrinsics, right_intrinsics):
        assert intrinsics.hfov_degrees == pytest.approx(40.0, abs=1e-6)
        assert (intrinsics.principal_x, intrinsics.principal_y) == (0.5, 0.5)
    # libheif turns cmin into a matrix in pixels, and cmex into a rotation (identity: parallel cameras).
    heif = pillow_heif.open_heif(target)
    focal = (WIDTH / 2) / math.tan(math.radians(20.0))
    for image in heif:
        matrix = image.info["heif"]["camera_intrinsic_matrix"]
        assert matrix["focal_length_x"] == pytest.approx(focal, rel=1e-6)
        assert matrix["focal_length_y"] == pytest.approx(focal, rel=1e-6)
        assert (matrix["principal_point_x"], matrix["principal_point_y"], matrix["skew"]) == (WIDTH / 2, HEIGHT / 2, 0)
        assert image.info["heif"]["camera_extrinsic_matrix_rot"] == (1, 0, 0, 0, 1, 0, 0, 0, 1)


def test_rewriting_the_meta_box_keeps_the_coded_images_bit_exact(tmp_path):
    original = encode_heif(list(smooth_views()), quality=90)
    spatial = add_stereo_pair(original, StereoCameras())
    assert len(spatial) > len(original)
    _, before = decoded(original)
    _, after = decoded(spatial)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # iloc moved with the data
    assert spatial.count(original[original.index(b"mdat") - 4 :]) == 1  # media data unchanged, only moved
    (tmp_path / "plain.heic").write_bytes(original)
    (tmp_path / "spatial.heic").write_bytes(spatial)
    assert not is_stereo_heic(tmp_path / "plain.heic") and is_stereo_heic(tmp_path / "spatial.heic")


def test_alpha_exif_and_colour_profile(tmp_path):
    left, right = smooth_views(channels=4)
    exif = Image.Exif()
    exif[0x0132] = "2026:11:25 10:00:00"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    target = tmp_path / "pair.heic"
    write_spatial_heic([left, right], target, force=False, exif=exif.tobytes(), icc_profile=icc)
    heif = pillow_heif.open_heif(target)
    assert len(heif) == 2 and all(image.mode == "RGBA" for image in heif)  # each eye keeps its alpha plane
    for image, view in zip(heif, (left, right)):
        alpha = np.asarray(image, np.float32)[:, :, 3] / 255
        assert np.abs(alpha - view[:, :, 3]).mean() < 2 / 255
        assert image.info["icc_profile"] == icc
    assert heif[0].info["entity_groups"][0]["images"] == [0, 1]  # the alpha planes are not grouped
    with Image.open(target) as image:  # Pillow (through pillow_heif's plugin) shows the left eye's EXIF
        assert image.getexif()[0x0132] == "2026:11:25 10:00:00"
    assert not heif[1].info.get("exif")


def test_folders_skip_our_spatial_photos_and_take_other_heics(tmp_path):
    """Ours are named with the layout's suffix; a spatial photo named otherwise (an iPhone's) is
    converted like any photo (its own eyes are laid out), as are 2D HEICs."""
    left, right = smooth_views()
    write_spatial_heic([left, right], tmp_path / "photo_spatial.heic", force=False)
    write_spatial_heic([left, right], tmp_path / "IMG_0001.heic", force=False)
    pillow_heif.from_bytes("RGB", (WIDTH, HEIGHT), np.zeros((HEIGHT, WIDTH, 3), np.uint8).tobytes()).save(
        tmp_path / "iphone.heic")
    (tmp_path / "broken.heic").write_bytes(b"\x00\x00\x00\x08ftyp")
    assert not is_stereo_heic(tmp_path / "iphone.heic") and not is_stereo_heic(tmp_path / "broken.heic")
    assert is_stereo_heic(tmp_path / "IMG_0001.heic")
    assert images_in_folder(tmp_path, recursive=False) == [
        tmp_path / "broken.heic", tmp_path / "IMG_0001.heic", tmp_path / "iphone.heic"]


def test_cli_writes_the_pair_into_one_spatial_heic(tmp_path):
    out = tmp_path / "out.heic"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "spatial", "-o", out,
                       "--baseline-mm", "30", "--hfov", "50")
    assert code == 0, output
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "lr-pair", "-o", tmp_path / "ref.png")
    assert code == 0, output
    heif, frames = decoded(out)
    for frame, reference in zip(frames, (tmp_path / "ref_L.png", tmp_path / "ref_R.png")):
        expected = load_picture(reference).pixels
        assert frame.shape == expected.shape == (240, 320, 3)
        assert np.abs(frame - expected).mean() < 2 / 255
    (_, (left, left_position)), (_, (right, right_position)) = cameras_of(out.read_bytes()).items()
    assert left_position == (0, 0, 0) and right_position == (30000, 0, 0)
    assert left.hfov_degrees == pytest.approx(50) and right.hfov_degrees == pytest.approx(50)
    assert is_stereo_heic(out)
    # Reading a spatial photo back as an INPUT gives its primary image, the left view.
    assert np.abs(load_picture(out).pixels - load_picture(SYNTHETIC).pixels).mean() < 2 / 255


def test_cli_defaults_and_the_vision_pro_preset(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(SYNTHETIC.read_bytes())
    # The preset's image type (jpg, for its side-by-side photos) does not apply to a .heic.
    code, output = run(photo, "--disparity", SYNTHETIC_DISP, "-f", "spatial", "--preset", "vision-pro")
    assert code == 0, output
    target = tmp_path / "photo_spatial.heic"
    (_, (left, _)), (_, (_, position)) = cameras_of(target.read_bytes()).items()
    assert left.hfov_degrees == pytest.approx(DEFAULT_HFOV) and position == (64000, 0, 0)
    with Image.open(target) as image:
        assert image.size == (320, 240)  # the preset's max width (2560) leaves it as it is


def test_cli_refuses_bad_combinations_and_writes_nothing(tmp_path):
    base = [SYNTHETIC, "--disparity", SYNTHETIC_DISP]
    cases = [
        ([*base, "-f", "spatial", "-o", tmp_path / "x.jpg"], "--format spatial writes a .heic file; name it x.heic"),
        ([*base, "-o", tmp_path / "x.heic"], ".heic needs --format spatial"),
        ([*base, "-f", "spatial", "--type", "png", "-o", tmp_path / "x.heic"],
         "writes HEVC images into a .heic file; drop --type png"),
        ([*base, "-f", "sbs", "--hfov", "40", "-o", tmp_path / "x.jpg"], "--hfov only apply to --format spatial"),
        ([*base, "--baseline-mm", "20", "-o", tmp_path / "x.jpg"], "--baseline-mm only apply to --format spatial"),
        ([*base, "-f", "spatial", "--hfov", "180"], "not in the range 0.0<x<180.0"),
    ]
    for arguments, message in cases:
        code, output = run(*arguments)
        assert code != 0 and message in output, (arguments, output)
        assert output.count("\n") == 1 and "Traceback" not in output
    assert os.listdir(tmp_path) == []


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "out.heic"
    out.write_bytes(b"precious")
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "spatial", "-o", out)
    assert code == 1 and "already exists" in output and out.read_bytes() == b"precious"
    code, output = run(SYNTHETIC, "--disparity", SYNTHETIC_DISP, "-f", "spatial", "-o", out, "--force")
    assert code == 0, output
    assert is_stereo_heic(out) and sorted(os.listdir(tmp_path)) == ["out.heic"]


def exif_with_focal_length(focal_35mm):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = focal_35mm  # FocalLengthIn35mmFilm
    return exif.tobytes()


def test_field_of_view_from_the_35mm_equivalent_focal_length():
    # An iPhone main camera (26 mm equivalent), 4:3: its width is 4/5 of the 43.27 mm diagonal.
    expected = math.degrees(2 * math.atan(math.hypot(36, 24) / 2 * 0.8 / 26))
    assert field_of_view_from_exif(exif_with_focal_length(26), 4032, 3024) == pytest.approx(expected)
    assert expected == pytest.approx(67.3, abs=0.05)
    # Portrait: the width is the short side. A 3:2 frame: 36 mm wide, as on film.
    assert field_of_view_from_exif(exif_with_focal_length(26), 3024, 4032) == pytest.approx(
        math.degrees(2 * math.atan(math.hypot(36, 24) / 2 * 0.6 / 26)))
    assert field_of_view_from_exif(exif_with_focal_length(50), 3000, 2000) == pytest.approx(
        math.degrees(2 * math.atan(18 / 50)))
    for exif in (None, b"", b"not exif", Image.Exif().tobytes(), exif_with_focal_length(0)):
        assert field_of_view_from_exif(exif, 4032, 3024) is None


def test_cli_takes_the_field_of_view_from_the_photo_unless_given(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.open(SYNTHETIC).convert("RGB").save(photo, exif=exif_with_focal_length(26), quality=95)
    code, output = run(photo, "--disparity", SYNTHETIC_DISP, "-f", "spatial")
    assert code == 0, output
    (_, (left, _)), _ = cameras_of((tmp_path / "photo_spatial.heic").read_bytes()).items()
    assert left.hfov_degrees == pytest.approx(field_of_view_from_exif(exif_with_focal_length(26), 320, 240))
    code, output = run(photo, "--disparity", SYNTHETIC_DISP, "-f", "spatial", "--hfov", "90", "--force")
    assert code == 0, output
    (_, (left, _)), _ = cameras_of((tmp_path / "photo_spatial.heic").read_bytes()).items()
    assert left.hfov_degrees == pytest.approx(90)


def test_output_names(tmp_path):
    photo = tmp_path / "album" / "IMG_0001.HEIC"
    photo.parent.mkdir()
    photo.write_bytes(b"")
    assert plan_jobs([photo], None, "spatial", None, False)[0].outputs == [tmp_path / "album" / "IMG_0001_spatial.heic"]
    assert plan_jobs([photo.parent], None, "spatial", None, False)[0].outputs == [
        tmp_path / "album_stereo" / "IMG_0001_spatial.heic"]
    assert plan_jobs([photo], tmp_path / "x.heic", "spatial", None, False)[0].outputs == [tmp_path / "x.heic"]
    with pytest.raises(SbsError, match="drop `image_type` jpg"):
        plan_jobs([photo], None, "spatial", "jpg", False)


def test_help_mentions_spatial():
    code, output = run("--help")
    text = " ".join(output.split())
    assert code == 0 and "a photo becomes one .heic" in text and "a video one MV-HEVC .mov/.mp4" in text
    assert "(_spatial)" in text
    assert "--baseline-mm" in text and "--hfov" in text


def test_text_to_spatial_photo(tmp_path, tiny_sd):
    out = tmp_path / "fox.heic"
    code, output = run(
        "--prompt", "a red fox", "--model", tiny_sd, "--steps", "2", "--disparity", SYNTHETIC_DISP,
        "--resolution", "128", "--divergence", "8", "-f", "spatial", "-o", out, "-q",
    )  # fmt: skip
    assert code == 0, output
    heif, (left, right) = decoded(out)
    assert left.shape == right.shape == (128, 128, 3) and not np.array_equal(left, right)
    (_, (intrinsics, _)), _ = cameras_of(out.read_bytes()).items()
    assert intrinsics.hfov_degrees == pytest.approx(DEFAULT_HFOV)  # a generated image has no EXIF: the default


def test_cli_16_bit_photo_is_written_8_bit_with_a_note(tmp_path):
    deep = (load_picture(SYNTHETIC).pixels * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    code, output = run(tmp_path / "deep.png", "--disparity", SYNTHETIC_DISP, "-f", "spatial")
    assert code == 0, output
    assert "16-bit pixels are written with 8 bits in .heic" in output and "--type" not in output
    heif, (left, _) = decoded(tmp_path / "deep_spatial.heic")
    assert heif[0].info["bit_depth"] == 8 and np.abs(left - deep / 65535).mean() < 2 / 255
