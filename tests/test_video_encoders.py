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
from sbsconvert.video.encoders import HARDWARE, pick_encoder, probe
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
