"""Encoder choice (--codec auto / by name, probed once, software fallback in one line) and rates
that follow the picture (presets' bits per pixel)."""

from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

from sbsconvert.cli import main
from sbsconvert.presets import load_preset
from sbsconvert.video.encode import VideoSettings, VideoWriter
from sbsconvert.video.encoders import HARDWARE, X265_REORDER_DELAY, pick_encoder, probe, settle_x265_dts
from sbsconvert.video.spatial import EyeEncoder
from test_video import disparity_map, make_clip

WORKING_HARDWARE = [name for names in HARDWARE.values() for name in names if probe(name, "yuv420p") is None]
needs_no_gpu = pytest.mark.skipif(bool(WORKING_HARDWARE), reason=f"a hardware encoder works here: {WORKING_HARDWARE}")


def stream_codec(path):
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name


def convert(tmp_path, *options):
    clip = tmp_path / "clip.mp4"
    if not clip.exists():
        make_clip(clip, frames=6, audio=False)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, [str(clip), "--disparity", str(disparity_map(tmp_path)), "-o", str(out),
                                       "--force", *options], catch_exceptions=False)
    return result, out


@needs_no_gpu
@pytest.mark.parametrize("codec, software, kind", [("h264_nvenc", "libx264", "h264"), ("hevc_nvenc", "libx265", "hevc"),
                                                   ("hevc_qsv", "libx265", "hevc")])
def test_a_hardware_encoder_that_does_not_work_gives_way_to_software_in_one_line(tmp_path, codec, software, kind):
    result, out = convert(tmp_path, "--codec", codec)
    assert result.exit_code == 0
    about_it = [line for line in result.stderr.splitlines() if codec in line or "Traceback" in line]
    assert len(about_it) == 1 and f"using {software}" in about_it[0]
    assert stream_codec(out) == kind


@needs_no_gpu
def test_auto_takes_software_here_and_hevc_for_10_bit(tmp_path):
    result, out = convert(tmp_path, "--codec", "auto", "-q")
    assert result.exit_code == 0 and result.stderr == ""  # no hardware is expected here: nothing to say
    assert stream_codec(out) == "h264"
    result, out = convert(tmp_path, "--codec", "auto", "--pix-fmt", "yuv420p10le", "-q")
    assert result.exit_code == 0 and stream_codec(out) == "hevc"
    assert pick_encoder("auto", "yuv420p") == ("libx264", None)


def test_each_encoder_is_probed_once_per_process():
    probe.cache_clear()
    for _ in range(3):
        pick_encoder("auto", "yuv420p")
        pick_encoder("h264_nvenc", "yuv420p")
    info = probe.cache_info()
    assert info.misses == len(HARDWARE["h264"]) + 1  # each H.264 hardware encoder, and libx264
    assert info.hits > 0


def test_unknown_codecs_are_refused():
    with pytest.raises(Exception, match="unknown video codec 'mpeg9'"):
        VideoSettings(codec="mpeg9").check()


def test_bits_per_pixel_rates_follow_the_output_size_and_frame_rate():
    quest = VideoSettings(**load_preset("quest3")["video"])
    assert quest.check() is None and quest.bitrate is None
    per_pixel = quest.bits_per_pixel
    half_sbs = quest.bit_rate(768, 576, Fraction(25))
    full_sbs_4k = quest.bit_rate(4128, 2064, Fraction(60))
    assert half_sbs == round(per_pixel * 768 * 576 * 25)
    assert full_sbs_4k / half_sbs == pytest.approx(4128 * 2064 * 60 / (768 * 576 * 25), rel=1e-6)
    assert 1e6 < half_sbs < 3e6  # the old fixed 40 Mb/s was 15-40 times this
    assert VideoSettings().bit_rate(768, 576, Fraction(25)) is None  # default: constant quality
    assert VideoSettings(bitrate="12M").bit_rate(768, 576, Fraction(25)) == 12_000_000
    # An encoder without a constant-quality mode gets a rate per pixel too.
    toolbox = VideoSettings(codec="h264", encoder="h264_videotoolbox")
    assert toolbox.bit_rate(100, 100, Fraction(30)) == round(0.1 * 100 * 100 * 30)


def test_the_encoder_gets_the_rate_of_the_frames_it_writes(tmp_path):
    settings = VideoSettings(bits_per_pixel=0.2)
    settings.check()
    writer = VideoWriter(tmp_path / "out.mp4", settings, frame_rate=Fraction(25), time_base=Fraction(1, 25))
    writer.write(np.zeros((64, 96, 3), np.float32), 0)
    # libx264 counts in kbit/s
    assert writer.stream.codec_context.bit_rate == round(0.2 * 96 * 64 * 25) // 1000 * 1000
    writer.close()


@pytest.mark.parametrize("given", [["--crf", "20"], ["--bitrate", "3M"]])
def test_an_explicit_rate_replaces_the_presets_bits_per_pixel(tmp_path, given):
    result, out = convert(tmp_path, "--preset", "quest3", *given, "-q")
    assert result.exit_code == 0, result.output
    with pytest.raises(Exception, match="contradict"):
        VideoSettings(crf=20, bits_per_pixel=0.1).check()


def packets_with_garbage_dts(pts_list):
    """What libx265 hands back for a short encode: the DTS is uninitialised memory."""
    packets = []
    for pts, garbage in zip(pts_list, (7922658147995118868, -6944657700590740581, 12345)):
        packet = av.Packet(b"\0\0\1")
        packet.pts, packet.dts = pts, garbage
        packets.append(packet)
    return packets


def test_libx265_dts_of_an_encode_within_its_reorder_delay_is_its_pts():
    for frames in range(1, X265_REORDER_DELAY + 1):
        packets = settle_x265_dts("libx265", packets_with_garbage_dts(range(frames)), frames)
        assert [packet.dts for packet in packets] == list(range(frames))
    # Longer encodes, and other encoders, keep the DTS they were given.
    kept = settle_x265_dts("libx265", packets_with_garbage_dts([0]), X265_REORDER_DELAY + 1)
    assert kept[0].dts == 7922658147995118868
    assert settle_x265_dts("libx264", packets_with_garbage_dts([0]), 1)[0].dts == 7922658147995118868


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_very_short_hevc_encodes_have_sane_timestamps(tmp_path, frames):
    """libx265 left the DTS of 1- and 2-frame encodes to chance: a 2-frame clip could not be written
    (pts < dts) or its spatial eyes seemed to drift apart."""
    settings = VideoSettings(codec="hevc")
    settings.check()
    writer = VideoWriter(tmp_path / "out.mkv", settings, frame_rate=Fraction(25), time_base=Fraction(1, 25),
                         capture=True)
    eye = EyeEncoder(64, 64, settings, pixel_format="yuv420p", time_base=Fraction(1, 25), frame_rate=Fraction(25),
                     keyint=25)
    eye_packets = []
    for index in range(frames):
        writer.write(np.full((64, 64, 3), index / 4, np.float32), index)
        frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 60 * index, np.uint8), format="rgb24")
        frame.pts = index
        eye_packets += eye.encode(frame.reformat(format="yuv420p"))
    writer.close()
    eye_packets += eye.encode(None)
    for stamps in ([(pts, dts) for pts, dts, _, _ in writer.captured], [(p.pts, p.dts) for p in eye_packets]):
        assert sorted(pts for pts, _ in stamps) == list(range(frames))
        dts = [dts for _, dts in stamps]
        assert dts == sorted(set(dts)) and all(-frames <= d <= pts for pts, d in stamps)


def test_a_two_frame_clip_converts_to_hevc(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=2, audio=False)
    for suffix in (".mkv", ".mp4"):
        out = tmp_path / f"out{suffix}"
        result = CliRunner().invoke(main, [str(clip), "--disparity", str(disparity_map(tmp_path)), "-o", str(out),
                                           "--codec", "hevc"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        with av.open(str(out)) as container:
            assert len(list(container.decode(video=0))) == 2



def test_libx264_is_held_to_avx2_routines_which_encode_deterministically():
    """Resume and Ray join segments encoded by different runs: equal frames must give equal bytes,
    which libx264's AVX-512 routines broke about once in 30 to 70 encodes of a small clip
    (bench/encoder_determinism.py). Its log names the routines it took."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    try:
        with av.logging.Capture(True) as logs:
            writer = VideoWriter("segment.mp4", VideoSettings(codec="h264"), frame_rate=Fraction(2),
                                 time_base=Fraction(1, 2), capture=True)
            writer.write(np.zeros((48, 64, 3), np.float32), 0)
            writer.close()
    finally:
        av.logging.set_level(level)
    capabilities = [message for _, name, message in logs if name == "libx264" and "cpu capabilities" in message]
    assert len(capabilities) == 1 and "AVX512" not in capabilities[0]
    assert len(writer.captured) == 1
