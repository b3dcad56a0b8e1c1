"""Videos are told by their content, not their name: MPEG program streams (.mpg, DVD), MPEG transport
streams (.ts from DVB, .m2ts/.MTS from AVCHD camcorders) convert whether given or found in a folder,
and a folder scan says which files it leaves out and why, in text and in --json."""

import json

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sbsconvert.cli import main
from sbsconvert.synthetic import render_scene

WIDTH, HEIGHT, FRAMES = 96, 64, 10

# name -> (FFmpeg muxer, its options, video codec, audio codec): what DVD/DVB/AVCHD files hold.
CLIPS = {
    "dvd.mpg": ("vob", {}, "mpeg2video", "mp2"),
    "dvb.ts": ("mpegts", {}, "mpeg2video", "mp2"),
    "avchd.m2ts": ("mpegts", {"mpegts_m2ts_mode": "1"}, "libx264", "ac3"),  # 192-byte packets
    "00001.MTS": ("mpegts", {"mpegts_m2ts_mode": "1"}, "libx264", "ac3"),
}


def make_clip(path, muxer, options, video_codec, audio_codec):
    scene = render_scene(WIDTH + 2 * FRAMES, HEIGHT)
    with av.open(str(path), "w", format=muxer, options=options) as container:
        video = container.add_stream(video_codec, rate=25)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = container.add_stream(audio_codec, rate=48000)
        for index in range(FRAMES):
            pixels = np.round(scene.left[:, 2 * index : 2 * index + WIDTH] * 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = sound.codec_context.frame_size
        for start in range(0, 48000 * FRAMES // 25, samples):
            block = av.AudioFrame.from_ndarray(np.zeros((1, 2 * samples), np.int16), format="s16", layout="stereo")
            block.sample_rate, block.pts = 48000, start
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    return path


def disparity_map(path):
    cv2.imwrite(str(path), np.round(np.tile(np.linspace(0, 255, WIDTH), (HEIGHT, 1))).astype(np.uint8))
    return path


def invoke(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def frame_count(path):
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_the_clips_are_what_their_names_say(tmp_path):
    """The test media have the property the tests rely on: MPEG-PS, MPEG-TS, and M2TS's 192-byte packets."""
    for name, spec in CLIPS.items():
        clip = make_clip(tmp_path / name, *spec)
        data = clip.read_bytes()
        with av.open(str(clip)) as container:
            if name.endswith(".mpg"):
                assert container.format.name == "mpeg" and data.startswith(b"\0\0\1\xba")  # a pack header
                continue
            assert container.format.name == "mpegts"
        packet = 192 if spec[1] else 188  # M2TS: a 4-byte timestamp before each 188-byte packet
        assert len(data) % packet == 0 and data[packet - 188] == data[2 * packet - 188] == 0x47


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_mpeg_program_and_transport_streams_convert_when_given(tmp_path, name):
    clip = make_clip(tmp_path / name, *CLIPS[name])
    code, _, stderr = invoke(clip, "--disparity", disparity_map(tmp_path / "map.png"))
    assert code == 0, stderr
    output = tmp_path / f"{clip.stem}_LR.mp4"
    assert frame_count(output) == FRAMES
    with av.open(str(output)) as container:
        assert container.streams.video[0].width == 2 * WIDTH and container.streams.audio  # the sound is kept


def test_a_folder_scan_takes_videos_by_content_and_reports_what_it_skips(tmp_path):
    album, maps = tmp_path / "album", tmp_path / "maps"
    album.mkdir(), maps.mkdir()
    for name, spec in CLIPS.items():
        make_clip(album / name, *spec)
        disparity_map(maps / f"{name.rsplit('.', 1)[0]}.png")
    (album / "notes.txt").write_text("shot list\n")
    (album / "app.ts").write_text("export const answer: number = 42;\n")  # TypeScript, not a transport stream
    (album / "data.xyz").write_bytes(np.random.default_rng(0).bytes(4000))
    disparity_map(album / "still.png").rename(album / "still.xyz")  # a picture under another name, not a video
    (album / "IMG_0001.CR2").write_bytes(b"II*\0\x10\0\0\0CR\2\0" + bytes(100))  # a camera's RAW beside its JPEG
    (album / "trip").mkdir()
    (album / ".DS_Store").write_bytes(b"\0" * 64)  # hidden: not looked at

    code, stdout, stderr = invoke(album, "--disparity", maps, "-o", tmp_path / "out", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert sorted(entry["input"].rsplit("/", 1)[1] for entry in summary["converted"]) == sorted(CLIPS)
    assert all(frame_count(entry["outputs"][0]) == FRAMES for entry in summary["converted"])
    skipped = {entry["input"].rsplit("/", 1)[1]: entry["note"] for entry in summary["skipped"]}
    assert sorted(skipped) == ["IMG_0001.CR2", "app.ts", "data.xyz", "notes.txt", "still.xyz", "trip"]
    assert skipped["IMG_0001.CR2"] == "a camera RAW photo (.CR2): develop it into a JPEG, TIFF or PNG first"
    assert "nor a video (.txt: not a media file" in skipped["notes.txt"]
    assert "nor a video (.ts: not a media file" in skipped["app.ts"]
    assert "nor a video (.xyz: not a media file" in skipped["data.xyz"]
    assert "nor a video (.xyz: a still PNG image" in skipped["still.xyz"]
    assert "--recursive" in skipped["trip"]
    for name, reason in skipped.items():
        assert f"skipped {album / name}: {reason}" in stderr.splitlines()
    assert "done: 4 converted, 6 skipped, 0 failed" in stderr


def test_a_folder_of_nothing_to_convert_names_what_it_skipped(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    (album / "notes.txt").write_text("shot list\n")
    code, _, stderr = invoke(album)
    assert code == 1
    assert stderr.strip() == (f"error: folder {album} holds no images or videos (skipped notes.txt: not an image type "
                              "sbsconvert reads, nor a video (.txt: not a media file FFmpeg reads))")


def test_sound_without_pictures_is_refused_with_its_reason(tmp_path):
    sound_only = tmp_path / "song.wav"
    with av.open(str(sound_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000)
        block = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 4800), np.int16), format="s16", layout="stereo")
        block.sample_rate, block.pts = 48000, 0
        container.mux(stream.encode(block))
        container.mux(stream.encode(None))
    code, _, stderr = invoke(sound_only)
    assert code == 1 and stderr.strip() == f"error: {sound_only}: not an image type sbsconvert reads, nor a video " \
                                           "(.wav: sound only, no video stream)"


def test_a_video_of_a_codec_ffmpeg_cannot_decode_is_refused_with_that_reason(tmp_path):
    clip = tmp_path / "odd.mov"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    unknown = tmp_path / "odd.cam"
    unknown.write_bytes(clip.read_bytes().replace(b"jpeg", b"zq9x", 1))  # a sample entry no decoder knows
    code, _, stderr = invoke(unknown)
    assert code == 1 and stderr.strip() == (f"error: {unknown}: not an image type sbsconvert reads, nor a video "
                                            "(.cam: its video codec cannot be decoded by this FFmpeg build)")
