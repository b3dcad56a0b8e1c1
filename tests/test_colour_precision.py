"""Colour and precision: HDR (PQ/HLG, BT.2020) and SD (BT.601) clips keep their colour tags and
their look, 10-bit sources stay 10-bit in HEVC, 16-bit grey photos stay 16-bit, and a drop in
precision is said in one line. Clips are made here with PyAV's libx265/libx264; the tags are read
back from the output."""

import struct
import zlib

import av
import cv2
import numpy as np
import png
import pytest
from PIL import Image, ImageCms

from conftest import run
from sbsconvert.video.encoders import X265_REORDER_DELAY
from sbsconvert.video.hdr import content_light_level, mastering_display

WIDTH, HEIGHT = 64, 64
PQ = {"primaries": 9, "transfer": 16, "matrix": 9, "range": 1}  # BT.2020, SMPTE ST 2084, BT.2020 NCL, limited
HLG_FULL = {"primaries": 9, "transfer": 18, "matrix": 9, "range": 2}  # ARIB STD-B67, full range
SD = {"primaries": 6, "transfer": 6, "matrix": 6, "range": 1}  # SMPTE 170M (BT.601)


def frames(count):
    """Smooth saturated gradients (10-bit steps show, and a wrong matrix shifts the hues)."""
    ramp = np.linspace(0, 1, WIDTH, dtype=np.float32)
    for index in range(count):
        image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        image[..., 0] = ramp
        image[..., 1] = ramp[::-1] * (0.5 + index / (2 * count))
        image[: HEIGHT // 2, :, 2] = 0.8
        yield image


def make_clip(path, codec, pixel_format, tags, count=4, x265_params=""):
    # libx265 leaves the timestamps of an encode of 2 frames or fewer to chance (see settle_x265_dts).
    assert codec != "libx265" or count > X265_REORDER_DELAY
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options={"crf": "12"} | (
            {"x265-params": "log-level=error" + x265_params} if codec == "libx265" else {}))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pixel_format
        context = stream.codec_context
        context.color_primaries, context.color_trc = tags["primaries"], tags["transfer"]
        context.colorspace, context.color_range = tags["matrix"], tags["range"]
        deep = pixel_format.endswith("10le")
        for index, image in enumerate(frames(count)):
            data = np.round(image * (65535 if deep else 255)).astype(np.uint16 if deep else np.uint8)
            frame = av.VideoFrame.from_ndarray(data, format="rgb48le" if deep else "rgb24")
            frame = frame.reformat(format=pixel_format, dst_colorspace=5 if tags["matrix"] == 6 else tags["matrix"],
                                   dst_color_range=tags["range"])
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def read_back(path):
    """(tags, pixel format, frames as float RGB decoded with the stream's own matrix and range)."""
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        tags = {"primaries": context.color_primaries, "transfer": context.color_trc, "matrix": context.colorspace,
                "range": context.color_range}
        pixel_format = context.pix_fmt
        images = []
        for frame in container.decode(video=0):  # swscale reads the frame's matrix and range tags
            images.append(frame.to_ndarray(format="rgb48le").astype(np.float32) / 65535)
    return tags, pixel_format, images


def convert(tmp_path, clip, *args):
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, WIDTH, dtype=np.float32), (HEIGHT, 1)))
    return run(clip, "--disparity", ramp, *args)


@pytest.mark.parametrize("tags, suffix", [(PQ, ".mp4"), (HLG_FULL, ".mkv")], ids=["pq-mp4", "hlg-full-mkv"])
def test_hdr_10_bit_keeps_its_tags_and_10_bits_in_hevc(tmp_path, tags, suffix):
    clip = tmp_path / f"hdr{suffix}"
    make_clip(clip, "libx265", "yuv420p10le", tags)
    code, output = convert(tmp_path, clip, "--codec", "hevc", "--crf", "12")
    assert code == 0, output
    assert "bits" not in output  # nothing lost, nothing to say
    source_tags, _, source = read_back(clip)
    out_tags, pixel_format, out = read_back(tmp_path / f"hdr_LR{suffix}")
    assert source_tags == tags and out_tags == tags and pixel_format == "yuv420p10le"
    # Away from the seam between the eyes, where chroma is interpolated across.
    for left_eye, original in zip([image[:, 4 : WIDTH - 4] for image in out], [image[:, 4:-4] for image in source]):
        assert np.abs(left_eye - original).mean() < 0.01  # 0.018 if re-mapped with BT.709


def test_10_bit_to_8_bit_h264_says_so_and_keeps_the_tags(tmp_path):
    clip = tmp_path / "hdr.mkv"
    make_clip(clip, "libx265", "yuv420p10le", PQ)
    code, output = convert(tmp_path, clip)  # the default codec: 8-bit H.264
    assert code == 0, output
    notes = [line for line in output.splitlines() if "bits" in line]
    assert len(notes) == 1 and "10-bit PQ HDR video is written with 8 bits" in notes[0] and "--codec hevc" in notes[0]
    tags, pixel_format, _ = read_back(tmp_path / "hdr_LR.mkv")
    assert tags == PQ and pixel_format == "yuv420p"


def test_sd_bt601_clip_keeps_its_matrix(tmp_path):
    clip = tmp_path / "sd.mp4"
    make_clip(clip, "libx264", "yuv420p", SD)
    code, output = convert(tmp_path, clip, "-q")
    assert code == 0, output
    _, _, source = read_back(clip)
    tags, pixel_format, out = read_back(tmp_path / "sd_LR.mp4")
    assert tags == SD and pixel_format == "yuv420p"
    # Away from the seam between the eyes, where chroma is interpolated across.
    for left_eye, original in zip([image[:, 4 : WIDTH - 4] for image in out], [image[:, 4:-4] for image in source]):
        assert np.abs(left_eye - original).mean() < 0.01  # 0.029 if re-mapped with BT.709


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_photo_stays_16_bit(tmp_path, suffix):
    grey = np.round(np.linspace(0, 65535, 97 * 40).reshape(40, 97)).astype(np.uint16)  # steps finer than 8 bits
    photo = tmp_path / f"scan{suffix}"
    cv2.imwrite(str(photo), grey)
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, 97, dtype=np.float32), (40, 1)))
    code, output = run(photo, "--disparity", ramp)
    assert code == 0, output
    assert "bits" not in output
    written = cv2.imread(str(tmp_path / f"scan_LR{suffix}"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (40, 2 * 97)  # still one grey channel
    assert (written[:, :97] == grey).all()  # the left eye: every 16-bit value as it was

    code, output = run(photo, "--disparity", ramp, "--type", "jpg")
    assert code == 0, output
    notes = [line for line in output.splitlines() if "bits" in line]
    assert len(notes) == 1 and "16-bit pixels are written with 8 bits in .jpg" in notes[0]


def test_frames_out_of_a_10_bit_clip_are_16_bit_png(tmp_path):
    clip = tmp_path / "hdr.mkv"
    make_clip(clip, "libx265", "yuv420p10le", PQ, count=3)
    code, output = convert(tmp_path, clip, "--frames-out")
    assert code == 0, output
    assert "bits" not in output
    _, _, source = read_back(clip)
    frame = cv2.imread(str(tmp_path / "hdr_LR" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert frame.dtype == np.uint16
    left_eye = frame[:, :WIDTH, ::-1].astype(np.float32) / 65535
    assert np.abs(left_eye - source[0]).mean() < 0.001  # the decoded 10-bit values, no 8-bit rounding
    code, output = convert(tmp_path, clip, "--frames-out", "--type", "jpg", "-o", tmp_path / "jpg")
    assert code == 0, output
    notes = [line for line in output.splitlines() if "bits" in line or "bit " in line]
    assert len(notes) == 1 and "10-bit video is written as 8-bit .jpg frames" in notes[0]


def png_chunks(path):
    """{type: data} of a PNG's chunks, read by pypng (independently of Pillow)."""
    return {tag: data for tag, data in png.Reader(filename=str(path)).chunks()}


@pytest.mark.parametrize("tags", [PQ, HLG_FULL], ids=["pq", "hlg"])
def test_frames_out_png_of_an_hdr_clip_says_its_colours_in_cicp(tmp_path, tags):
    clip = tmp_path / "hdr.mkv"
    make_clip(clip, "libx265", "yuv420p10le", tags, count=3)
    code, output = convert(tmp_path, clip, "--frames-out")
    assert code == 0, output
    # BT.2020 primaries, the clip's transfer (PQ 16, HLG 18), RGB (matrix 0), full range
    assert png_chunks(tmp_path / "hdr_LR" / "000001.png")[b"cICP"] == bytes((9, tags["transfer"], 0, 1))


def test_frames_out_png_of_an_sd_clip_has_no_cicp(tmp_path):
    clip = tmp_path / "sd.mp4"
    make_clip(clip, "libx264", "yuv420p", SD, count=2)
    code, output = convert(tmp_path, clip, "--frames-out")
    assert code == 0, output
    assert b"cICP" not in png_chunks(tmp_path / "sd_LR" / "000001.png")  # viewers read it as sRGB, as the video


def hlg_photo(path):
    """A 16-bit HLG photo as HDR cameras and editors write it: iCCP, cICP (BT.2020, HLG), cHRM, eXIf."""
    values = np.round(np.linspace(0, 65535, 40 * 97 * 3)).reshape(40, 97, 3).astype(np.uint16)
    cv2.imwrite(str(path), values[:, :, ::-1])
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif.get_ifd(0x8769)[0x9003] = "2026:12:01 10:20:30"  # date taken, in the Exif sub-directory
    chromaticities = struct.pack(">8I", 31270, 32900, 70800, 29200, 17000, 79700, 13100, 4600)  # D65, BT.2020
    extra = [(b"iCCP", b"camera\0\0" + zlib.compress(profile)), (b"cICP", bytes((9, 18, 0, 1))),
             (b"cHRM", chromaticities), (b"eXIf", exif.tobytes()[6:])]
    header, *rest = png.Reader(filename=str(path)).chunks()
    with open(path, "wb") as file:
        png.write_chunks(file, [header, *extra, *rest])
    return values, profile, chromaticities


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_hdr_photo_keeps_its_profile_colour_chunks_and_exif(tmp_path, suffix):
    photo = tmp_path / "hlg.png"
    values, profile, chromaticities = hlg_photo(photo)
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, 97, dtype=np.float32), (40, 1)))
    out = tmp_path / f"out{suffix}"
    code, output = run(photo, "--disparity", ramp, "-o", out)
    assert code == 0, output
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and (written[:, :97, ::-1] == values).all()
    with Image.open(out) as image:
        assert image.info["icc_profile"] == profile
        exif = image.getexif()
        assert exif[0x010F] == "Camera maker" and exif.get_ifd(0x8769)[0x9003] == "2026:12:01 10:20:30"
    if suffix == ".png":  # TIFF has no tag for cICP, cHRM
        chunks = png_chunks(out)
        assert chunks[b"cICP"] == bytes((9, 18, 0, 1)) and chunks[b"cHRM"] == chromaticities


@pytest.mark.parametrize("layout, mode", [("sbs", "L"), ("tb", "L"), ("anaglyph", "RGB")])
def test_grey_photo_stays_grey_where_the_layout_is(tmp_path, layout, mode):
    photo = tmp_path / "grey.png"
    Image.fromarray(np.round(np.linspace(0, 255, 40 * 97)).reshape(40, 97).astype(np.uint8), "L").save(photo)
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, 97, dtype=np.float32), (40, 1)))
    code, output = run(photo, "--disparity", ramp, "-f", layout, "-o", tmp_path / "out.png")
    assert code == 0, output
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == mode


MASTERING = "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)L(10000000,1)"  # BT.2020, 1000 nits


def test_mastering_display_and_light_level_parse_from_side_data():
    primaries = [35400, 50000, 14600, 50000, 17, 100, 39850, 50000, 6550, 50000, 2300, 50000]  # R, G (0.17), B
    data = struct.pack("=20i2i", *primaries, 15635, 50000, 16450, 50000, 1, 10000, 1000, 1, 1, 1)
    assert mastering_display(data) == MASTERING
    assert mastering_display(data[:-8] + struct.pack("=2i", 1, 0)) is None  # no luminance given
    assert mastering_display(data[:40]) is None
    assert content_light_level(struct.pack("=2I", 1000, 400)) == "1000,400"


def side_data(path):
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return {str(data.type): bytes(data) for data in frame.side_data if "SEI_UNREGISTERED" not in str(data.type)}


def test_hdr10_metadata_reaches_the_hevc_output(tmp_path):
    clip = tmp_path / "hdr10.mkv"
    make_clip(clip, "libx265", "yuv420p10le", PQ, count=3, x265_params=f":master-display={MASTERING}:max-cll=1000,400")
    source = side_data(clip)
    assert len(source) == 2  # mastering display and content light level
    code, output = convert(tmp_path, clip, "--codec", "hevc")
    assert code == 0, output
    out = side_data(tmp_path / "hdr10_LR.mkv")
    assert {kind: out.get(kind) for kind in source} == source  # the same bytes (beside the stereo mode)


def test_hdr10_metadata_survives_segments(tmp_path):
    """Each segment's encoder gets the source's mastering display and light level, as one piece
    does (the join refused the segments before: their encoder headers differed from the output's)."""
    clip = tmp_path / "hdr10.mkv"
    make_clip(clip, "libx265", "yuv420p10le", PQ, count=60,
              x265_params=f":master-display={MASTERING}:max-cll=1000,400:keyint=25:min-keyint=25")
    code, output = convert(tmp_path, clip, "--codec", "hevc", "--segment-seconds", "1", "-v")
    assert code == 0, output
    assert "3 segments" in output
    source, out = side_data(clip), side_data(tmp_path / "hdr10_LR.mkv")
    assert {kind: out.get(kind) for kind in source} == source
