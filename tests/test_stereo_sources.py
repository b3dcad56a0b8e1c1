"""A video that already holds two eyes (MV-HEVC, such as Apple spatial video) keeps them: its own left
and right views are laid out as asked (side by side for a Quest, two files, frames...), with no
depth model and nothing synthesised, in one piece or in segments alike."""

from types import SimpleNamespace

import numpy as np
import pytest

from PIL import Image

from conftest import SAMPLES, run
from sbsconvert.decode import load_stereo_eyes
from sbsconvert.errors import SbsError
from sbsconvert.formats.heif.items import add_entity_group, add_item_properties, edit_meta, entity_group_bytes, master_images
from sbsconvert.formats.isobmff.boxes import box
from sbsconvert.layout import compose, split
from sbsconvert.output import write_mpo
from sbsconvert.spatial_photo import StereoCameras, encode_heif, stereo_heic_camera, write_spatial_heic
from sbsconvert.video.decode import HERO_LEFT, HERO_RIGHT, VideoReader, view_pairs, declared_packing, hero_eye
from sbsconvert.video.spatial import spatial_video_camera
from test_heif_boxes import VISIONOS1_DISPARITY, VISIONOS1_INTRINSICS, VISIONOS1_LEFT, VISIONOS1_RIGHT
from test_spatial_video import psnr, views
from test_video import audio_packets, decoded, disparity_map, make_clip

NO_MODEL = ["--depth-model", "/nonexistent/depth-model"]  # loading it would fail: proves it is never asked


@pytest.fixture(scope="module")
def spatial_clip(tmp_path_factory):
    """A 4.3-s spatial video (IDR pictures every 2 s) whose right eye differs from its left."""
    folder = tmp_path_factory.mktemp("stereo")
    clip = folder / "clip.mp4"
    make_clip(clip, frames=130, motion=1)
    code, output = run(clip, "--disparity", disparity_map(folder), "--divergence", "6", "-f", "spatial", "-q")
    assert code == 0, output
    return folder / "clip_spatial.mp4"


def test_the_reader_gives_both_eyes_of_a_spatial_video(spatial_clip, tmp_path):
    with VideoReader(spatial_clip, all_views=True) as reader:
        assert reader.info.stereo
        frames = list(reader.frames())
    with VideoReader(spatial_clip) as reader:  # the base view alone: the left eye as a 2D video
        assert not reader.info.stereo and next(reader.frames()).right is None
    left, right, times = views(spatial_clip)
    assert len(frames) == len(left) == 130
    assert [float(frame.pts * frame.time_base) for frame in frames] == pytest.approx(times)
    assert all(psnr(frame.pixels, l) > 45 and psnr(frame.right, r) > 45 for frame, l, r in zip(frames, left, right))
    plain = tmp_path / "plain.mp4"  # one view: no right eye
    make_clip(plain, frames=3)
    with VideoReader(plain, all_views=True) as reader:
        assert not reader.info.stereo and next(reader.frames()).right is None


def assert_side_by_side_of_own_eyes(out, spatial_clip):
    frames, times, _ = decoded(out)
    left, right, source_times = views(spatial_clip)
    assert len(frames) == 130 and times == pytest.approx(source_times)
    width = left[0].shape[1]
    for frame, own_left, own_right in zip(frames, left, right):
        assert psnr(frame[:, :width], own_left) > 32 and psnr(frame[:, width:], own_right) > 32
        assert psnr(frame[:, width:], own_right) > psnr(frame[:, width:], own_left) + 3  # the real right eye
    assert audio_packets(out) == audio_packets(spatial_clip)


def test_a_spatial_video_becomes_side_by_side_from_its_own_eyes(spatial_clip, tmp_path):
    out = tmp_path / "quest_LR.mp4"
    code, output = run(spatial_clip, "-o", out, *NO_MODEL)
    assert code == 0, output
    assert "its own left and right eyes are laid out" in output
    assert_side_by_side_of_own_eyes(out, spatial_clip)


def test_a_spatial_video_in_segments(spatial_clip, tmp_path):
    out = tmp_path / "parts_LR.mp4"
    code, output = run(spatial_clip, "-o", out, *NO_MODEL, "--segment-seconds", "1", "-v")
    assert code == 0, output
    assert "3 segments, 0 resumed" in output, output
    assert_side_by_side_of_own_eyes(out, spatial_clip)


def test_lr_pair_files_are_the_two_views(spatial_clip, tmp_path):
    code, output = run(spatial_clip, "-f", "lr-pair", "-o", tmp_path / "eye.mp4", *NO_MODEL, "-q")
    assert code == 0, output
    left, right, _ = views(spatial_clip)
    for name, own in (("eye_L.mp4", left), ("eye_R.mp4", right)):
        frames = decoded(tmp_path / name)[0]
        assert len(frames) == 130 and min(psnr(a, b) for a, b in zip(frames, own)) > 32


def test_a_right_hero_eye_means_the_base_view_is_the_right_eye(spatial_clip, tmp_path):
    """Apple's `hero` box names the eye a 2D player shows, i.e. the base view: with hero = right
    (the file's one byte changed), the base view is read as the right eye."""
    data = spatial_clip.read_bytes()
    at = data.index(b"hero") + 8  # after the type and the full box's version and flags
    assert data[at] == HERO_LEFT and hero_eye(spatial_clip) == HERO_LEFT
    flipped = tmp_path / "flipped.mp4"
    flipped.write_bytes(data[:at] + bytes([HERO_RIGHT]) + data[at + 1 :])
    assert hero_eye(flipped) == HERO_RIGHT
    with VideoReader(spatial_clip, all_views=True) as reader, VideoReader(flipped, all_views=True) as swapped:
        for frame, other in zip(reader.frames(), swapped.frames()):
            assert np.array_equal(frame.pixels, other.right) and np.array_equal(frame.right, other.pixels)


def test_a_picture_without_its_second_view_is_an_error(tmp_path):
    picture = lambda pts: SimpleNamespace(pts=pts, width=8, height=8)
    assert [(a.pts, b.pts) for a, b in view_pairs([picture(0), picture(0), picture(1), picture(1)], tmp_path)] == [
        (0, 0), (1, 1)]
    with pytest.raises(SbsError, match="lacks its second view"):
        list(view_pairs([picture(0), picture(0), picture(1), picture(2)], tmp_path))
    with pytest.raises(SbsError, match="lacks its second view"):
        list(view_pairs([picture(0)], tmp_path))


def photo_eyes():
    """Two clearly different eyes: a photo and the same photo moved 12 pixels."""
    left = np.asarray(Image.open(SAMPLES / "chelsea.jpg").convert("RGB").resize((240, 160)), np.float32) / 255
    return left, np.roll(left, -12, axis=1)


def halves(path):
    pixels = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    width = pixels.shape[1] // 2
    return pixels[:, :width], pixels[:, width:]


@pytest.mark.parametrize("name", ["IMG_0001.heic", "DSCF0001.mpo"])
def test_a_stereo_photo_becomes_side_by_side_from_its_own_eyes(tmp_path, name):
    left, right = photo_eyes()
    source = tmp_path / name
    (write_spatial_heic if name.endswith(".heic") else write_mpo)([left, right], source, force=False)
    out = tmp_path / "out_LR.png"
    code, output = run(source, "-o", out, *NO_MODEL)
    assert code == 0, output
    assert "its own left and right eyes are laid out" in output
    out_left, out_right = halves(out)
    assert psnr(out_left, left) > 35 and psnr(out_right, right) > 35
    assert psnr(out_right, right) > psnr(out_right, left) + 5


def test_the_stereo_group_says_which_image_is_the_left_eye(tmp_path):
    """The ster group lists its entities left eye first; with the two ids swapped (a hand-edited
    file), the primary image is the right eye."""
    left, right = photo_eyes()
    source = tmp_path / "pair.heic"
    write_spatial_heic([left, right], source, force=False)
    data = source.read_bytes()
    at = data.index(b"ster") + 4 + 4 + 4 + 4  # type, version/flags, group_id, num_entities_in_group
    first, second = data[at : at + 4], data[at + 4 : at + 8]
    swapped = tmp_path / "swapped.heic"
    swapped.write_bytes(data[:at] + second + first + data[at + 8 :])
    assert load_stereo_eyes(source)[0] == pytest.approx(load_stereo_eyes(swapped)[1])
    assert load_stereo_eyes(source)[1] == pytest.approx(load_stereo_eyes(swapped)[0])


def test_a_stereo_photo_whose_eyes_differ_in_size_is_refused(tmp_path):
    left, right = photo_eyes()
    source = tmp_path / "odd.mpo"
    write_mpo([left, right[:, :200]], source, force=False)
    code, output = run(source, "-o", tmp_path / "out_LR.png", *NO_MODEL)
    assert code != 0 and "its two eyes differ in size (240x160 and 200x160)" in output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["odd.mpo"]


@pytest.mark.parametrize("name", ["sbs", "tb", "crosseye", "hsbs", "htb"])
def test_split_undoes_compose(name):
    left, right = photo_eyes()
    (frame,) = compose(left, right, name)
    got_left, got_right = split(frame, name)
    assert got_left.shape == got_right.shape == left.shape
    if name in ("hsbs", "htb"):  # squeezed and stretched back: close on a photo, exact nowhere
        assert psnr(got_left, left) > 24 and psnr(got_right, right) > 24
        assert psnr(got_right, right) > psnr(got_right, left) + 3
    else:
        assert np.array_equal(got_left, left) and np.array_equal(got_right, right)


def test_an_odd_sized_packed_frame_is_refused(tmp_path):
    with pytest.raises(SbsError, match="an odd number of pixels wide"):
        split(np.zeros((4, 5, 3), np.float32), "sbs")
    with pytest.raises(SbsError, match="an odd number of pixels high"):
        split(np.zeros((5, 4, 3), np.float32), "htb")
    source = tmp_path / "odd_LR.png"
    Image.new("RGB", (101, 40)).save(source)
    code, output = run(source, "--input-layout", "sbs", "-o", tmp_path / "out_TB.png", "-f", "tb")
    assert code != 0 and "an odd number of pixels wide" in output
    assert not (tmp_path / "out_TB.png").exists()


def test_a_side_by_side_photo_becomes_over_under_from_its_own_eyes(tmp_path):
    left, right = photo_eyes()
    (frame,) = compose(left, right, "sbs")
    source = tmp_path / "holiday_LR.png"
    Image.fromarray(np.round(frame * 255).astype(np.uint8)).save(source)
    code, output = run(source, "--input-layout", "sbs", "-f", "tb", "-o", tmp_path / "out.png", *NO_MODEL)
    assert code == 0, output
    assert "each frame packs both eyes (--input-layout sbs)" in output
    out = np.asarray(Image.open(tmp_path / "out.png"), np.float32) / 255
    height = left.shape[0]
    assert np.abs(out[:height] - left).max() <= 1 / 255 and np.abs(out[height:] - right).max() <= 1 / 255


def test_a_folder_of_packed_files_is_read_whole_with_input_layout(tmp_path):
    """Without --input-layout, files named like our outputs are skipped in a folder scan; with it,
    they are what the user asks to convert."""
    left, right = photo_eyes()
    folder = tmp_path / "3d"
    folder.mkdir()
    (frame,) = compose(left, right, "sbs")
    Image.fromarray(np.round(frame * 255).astype(np.uint8)).save(folder / "a_LR.png")
    code, output = run(folder, "-o", tmp_path / "plain", *NO_MODEL)
    assert code != 0 and "holds no images or videos" in output
    code, output = run(folder, "--input-layout", "sbs", "-f", "crosseye", "-o", tmp_path / "out", *NO_MODEL)
    assert code == 0, output
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["a_LR_RL.png"]


def test_a_side_by_side_video_becomes_spatial_video(tmp_path):
    """A 3D movie in side by side (both eyes at full width) becomes Apple spatial video: each view
    is its half of the frame."""
    left, right = photo_eyes()
    frames = [compose(np.roll(left, step, axis=1), np.roll(right, step, axis=1), "sbs")[0] for step in range(8)]
    source = tmp_path / "movie_LR.mp4"
    make_clip(source, frames=8, width=480, height=160, images=frames)
    code, output = run(source, "--input-layout", "sbs", "-f", "spatial", "-o", tmp_path / "movie.mov", *NO_MODEL)
    assert code == 0, output
    out_left, out_right, _ = views(tmp_path / "movie.mov")
    assert len(out_left) == len(out_right) == 8
    for view_left, view_right, frame in zip(out_left, out_right, frames):
        assert psnr(view_left, frame[:, :240]) > 30 and psnr(view_right, frame[:, 240:]) > 30
        assert psnr(view_right, frame[:, 240:]) > psnr(view_right, frame[:, :240]) + 3


@pytest.mark.parametrize("container, packing", [(".mkv", "left_right"), (".mp4", "top_bottom")])
def test_a_video_tagged_as_packed_3d_asks_how_its_eyes_are_packed(tmp_path, container, packing):
    """Our own side-by-side / over-under outputs carry the tag (Matroska StereoMode, MP4 st3d):
    given back as INPUT, auto refuses them with one line instead of making a stereo pair of a
    stereo pair; 2d converts them as one picture anyway, and the packing lays their eyes out."""
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=4)
    layout = "sbs" if packing == "left_right" else "tb"
    tagged = tmp_path / f"tagged{container}"
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", layout, "-o", tagged, "-q")
    assert code == 0, output
    assert declared_packing(tagged) == packing
    code, output = run(tagged, "-o", tmp_path / "again.mp4", *NO_MODEL)
    assert code == 1 and f"the file says each frame holds both eyes ({packing})" in output
    assert f"--input-layout {layout} or h{layout}" in output
    assert not (tmp_path / "again.mp4").exists() and not list(tmp_path.glob(".again*"))
    code, output = run(tagged, "--input-layout", layout, "-f", "lr-pair", "-o", tmp_path / "eyes.mp4", *NO_MODEL)
    assert code == 0, output
    height, width = decoded(tagged)[0][0].shape[:2]
    code, output = run(tagged, "--input-layout", "2d", "--disparity", disparity_map(tmp_path, width, height), "-o",
                       tmp_path / "flat.mp4", "-q")
    assert code == 0, output
    assert decoded(tmp_path / "flat.mp4")[0][0].shape[1] == 2 * decoded(tagged)[0][0].shape[1]  # whole frame, one eye


def test_2d_reads_a_stereo_file_as_one_picture(spatial_clip, tmp_path):
    code, output = run(spatial_clip, "--input-layout", "2d", "--disparity", disparity_map(tmp_path), "-o",
                       tmp_path / "flat_LR.mp4")
    assert code == 0, output
    assert "its own left and right eyes" not in output
    frames = decoded(tmp_path / "flat_LR.mp4")[0]
    left, right, _ = views(spatial_clip)
    width = left[0].shape[1]
    assert psnr(frames[0][:, :width], left[0]) > 32  # the left eye, made stereo from depth: not its own right
    assert psnr(frames[0][:, width:], right[0]) < psnr(frames[0][:, :width], left[0]) - 3


def test_a_spatial_video_written_again_keeps_its_camera(tmp_path):
    """An iPhone's spatial video (here one stating an iPhone 15 Pro's 19.24 mm and 63.4°) trimmed or
    re-encoded as spatial keeps the camera it states, unless an option says otherwise."""
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=6)
    iphone = tmp_path / "iphone.mov"
    code, output = run(clip, "--disparity", disparity_map(tmp_path), "-f", "spatial", "--baseline-mm", "19.24",
                       "--hfov", "63.4", "-o", iphone, "-q")
    assert code == 0, output
    assert spatial_video_camera(iphone) == (19.24, 63.4)
    for name, options, camera in (("kept.mov", [], (19.24, 63.4)), ("wider.mov", ["--baseline-mm", "30"], (30, 63.4))):
        code, output = run(iphone, "-f", "spatial", "-o", tmp_path / name, "-q", *NO_MODEL, *options)
        assert code == 0, output
        assert spatial_video_camera(tmp_path / name) == camera


def test_a_spatial_photo_written_again_keeps_its_camera(tmp_path):
    left, right = photo_eyes()
    source = tmp_path / "IMG_0001.heic"
    write_spatial_heic([left, right], source, force=False, cameras=StereoCameras(19.24, 63.4))
    assert stereo_heic_camera(source) == (pytest.approx(19.24), pytest.approx(63.4), None)
    code, output = run(source, "-f", "spatial", "-o", tmp_path / "again.heic", *NO_MODEL)
    assert code == 0, output
    assert stereo_heic_camera(tmp_path / "again.heic") == (pytest.approx(19.24), pytest.approx(63.4), None)
    plain = tmp_path / "plain.heic"
    write_spatial_heic([left, right], plain, force=False)  # defaults: 64 mm, 60°
    assert stereo_heic_camera(plain) == (pytest.approx(64), pytest.approx(60), None)


def visionos1_heic(path, left, right):
    """A spatial photo as visionOS 1 wrote them: the ster group, and the camera in Apple's uuid item
    properties (the bytes of a Vision Pro photo: 63.774 mm, 80.0°, +2.93 % disparity adjustment)
    instead of cmin/cmex; its EXIF gives Vision Pro's 18 mm equivalent focal length."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 18
    heif = encode_heif([left, right], exif=exif.tobytes())

    def edit(meta):
        first, second = master_images(meta)
        shared = [box(b"uuid", VISIONOS1_INTRINSICS), box(b"uuid", VISIONOS1_DISPARITY)]
        add_item_properties(meta, {first: [box(b"uuid", VISIONOS1_LEFT), *shared],
                                   second: [box(b"uuid", VISIONOS1_RIGHT), *shared]})
        add_entity_group(meta, entity_group_bytes(b"ster", 100, [first, second]))

    path.write_bytes(edit_meta(heif, edit))
    return path


def test_a_visionos1_spatial_photo_written_again_keeps_its_camera(tmp_path):
    """visionOS 1 kept the camera in uuid properties, not cmin/cmex: written again as spatial, the
    photo keeps its 63.774 mm, 80.0° and +2.93 % adjustment (not 64 mm and its EXIF's field of view)."""
    source = visionos1_heic(tmp_path / "IMG_0003.HEIC", *photo_eyes())
    assert stereo_heic_camera(source) == (63.774, pytest.approx(80.0), 293)
    code, output = run(source, "-f", "spatial", "-o", tmp_path / "again.heic", *NO_MODEL)
    assert code == 0, output
    assert "its own left and right eyes" in output
    assert stereo_heic_camera(tmp_path / "again.heic") == (63.774, pytest.approx(80.0, abs=1e-6), 293)
    code, output = run(source, "-f", "spatial", "--baseline-mm", "50", "-o", tmp_path / "wider.heic", *NO_MODEL)
    assert code == 0, output
    assert stereo_heic_camera(tmp_path / "wider.heic") == (50, pytest.approx(80.0, abs=1e-6), 293)


def test_a_spatial_photo_is_not_called_animated(tmp_path):
    left, right = photo_eyes()
    source = tmp_path / "IMG_0002.heic"
    write_spatial_heic([left, right], source, force=False)
    code, output = run(source, "-o", tmp_path / "out_LR.jpg", *NO_MODEL)
    assert code == 0, output
    assert "animated" not in output
