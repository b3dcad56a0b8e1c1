"""Audio the output container cannot hold: decided before the first frame is encoded (--audio
auto|copy|aac|none). Sources made here with PyAV: WebM (VP9 + Opus), Matroska with FLAC or PCM,
MOV with PCM; each carries a tone burst at a known time, so the output's sync can be measured."""

import re
from pathlib import Path

import av
import numpy as np
import pytest

import sbsconvert.video.pipeline as pipeline
from conftest import SAMPLES, run
from sbsconvert.core import Job
from sbsconvert.video.segments import work_folder
from test_segments import interrupted_run

DISPARITY = SAMPLES / "disparity" / "clip.png"
WIDTH, HEIGHT = 64, 48
FPS = 10
BURST = 1.3  # seconds: where the source's sound starts (silence before it)
LANGUAGES = ("eng", "fra", "deu")


def make_source(path: Path, *audio: str, seconds: float = 3.0, rate: int = 48000, layout: str = "stereo") -> Path:
    """A `seconds` long clip (VP9 in WebM, else H.264, a keyframe every half second) with an audio
    stream per codec in `audio` (the first tagged English, the next French...), each silent until
    BURST, then a 440 Hz tone."""
    video_codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    total = int(seconds * rate)
    time = np.arange(total) / rate
    tone = np.where(time >= BURST, 0.3 * np.sin(2 * np.pi * 440 * time), 0.0)
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=FPS, options={"g": str(FPS // 2)})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sounds = []
        for codec, language in zip(audio, LANGUAGES):
            sound = container.add_stream(codec, rate=rate, layout=layout)
            sound.metadata["language"] = language
            sound.codec_context.open()
            sounds.append([sound, 0])  # and the samples written so far
        for index in range(int(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index * 7 % 256, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            for entry in sounds:
                sound, samples = entry
                context = sound.codec_context
                while samples < min(total, (index + 1) * rate // FPS):
                    chunk = tone[samples : samples + (context.frame_size or 1024)]
                    is_integer = context.format.name.startswith("s16")
                    chunk = np.round(chunk * 32767).astype(np.int16) if is_integer else chunk.astype(np.float32)
                    channels = context.layout.nb_channels
                    data = np.stack([chunk] * channels) if context.format.is_planar else np.repeat(chunk, channels)[None]
                    block = av.AudioFrame.from_ndarray(data, format=context.format.name, layout=layout)
                    block.sample_rate, block.pts = rate, samples
                    container.mux(sound.encode(block))
                    samples += chunk.size
                entry[1] = samples
        container.mux(video.encode(None))
        for sound, _ in sounds:
            container.mux(sound.encode(None))
    return path


def audio_of(path: Path, number: int = 0) -> dict:
    """The `number`th audio stream's codec, rate, channels, language, how long it plays and when
    its sound starts."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return {}
        stream = container.streams.audio[number]
        start, samples, rate = None, [], stream.codec_context.sample_rate
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.pts * frame.time_base)
            data = frame.to_ndarray()[0]
            samples.append((data if frame.format.is_planar else data[:: frame.layout.nb_channels]).astype(np.float64))
        sound = np.concatenate(samples)
        if np.abs(sound).max() > 2:  # integer samples
            sound = sound / 32768
        onset = start + np.argmax(np.abs(sound) > 0.05) / rate
        return {"codec": stream.codec_context.name, "rate": rate, "channels": stream.codec_context.channels,
                "layout": stream.codec_context.layout.name, "language": stream.metadata.get("language"), "seconds": start + sound.size / rate, "onset": onset,
                "packets": [bytes(packet) for packet in container.demux(stream) if packet.size]}


def convert(source: Path, out: Path, *extra: object) -> tuple[int, str]:
    return run(source, "--disparity", DISPARITY, "-o", out, *extra)


def notes_about_audio(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("note:") and "audio" in line]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio_sources")
    return {
        "opus": make_source(folder / "web.webm", "libopus"),
        "flac": make_source(folder / "film.mkv", "flac"),
        "pcm_mkv": make_source(folder / "pcm.mkv", "pcm_s16le"),
        "pcm_mov": make_source(folder / "pcm.mov", "pcm_s16le"),
    }


@pytest.mark.parametrize("source, suffix, codec", [
    ("opus", ".mov", "opus"),
    ("flac", ".mov", "flac"),
    ("pcm_mkv", ".mp4", "pcm_s16le"),  # Matroska's PCM names no channels, which MP4 needs
])
def test_audio_a_container_cannot_hold_becomes_aac_in_sync_with_one_note(sources, tmp_path, source, suffix, codec):
    out = tmp_path / f"out{suffix}"
    code, output = convert(sources[source], out)
    assert code == 0, output
    assert notes_about_audio(output) == [f"note: {sources[source].name}: its {codec} audio cannot go into {suffix}; "
                                         "transcoded to AAC"]
    before, after = audio_of(sources[source]), audio_of(out)
    assert after["codec"] == "aac" and after["rate"] == before["rate"] and after["channels"] == before["channels"]
    assert after["seconds"] == pytest.approx(before["seconds"], abs=0.03)
    assert after["onset"] == pytest.approx(BURST, abs=0.005) and before["onset"] == pytest.approx(BURST, abs=0.005)


@pytest.mark.parametrize("source, suffix", [("opus", ".mp4"), ("flac", ".mkv"), ("pcm_mov", ".mp4")])
def test_audio_the_container_holds_is_copied_unchanged(sources, tmp_path, source, suffix):
    out = tmp_path / f"out{suffix}"
    code, output = convert(sources[source], out)
    assert code == 0, output
    assert notes_about_audio(output) == []
    assert audio_of(out)["packets"] == audio_of(sources[source])["packets"]


def test_audio_copy_refuses_up_front_in_one_line_leaving_nothing(sources, tmp_path, monkeypatch):
    encoded = []
    real = pipeline.convert_video
    monkeypatch.setattr(pipeline, "convert_video", lambda *args, **options: encoded.append(1) or real(*args, **options))
    for extra in ((), ("--segment-seconds", "1")):  # one piece, and in segments (a work folder)
        out = tmp_path / "web.mov"
        code, output = convert(sources["opus"], out, "--audio", "copy", *extra)
        assert code == 1
        lines = output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "opus" in lines[0] and ".mov" in lines[0]
        assert "part" not in lines[0]  # names the codec and container, not a temp file
        assert encoded == []  # refused before any frame was encoded
        assert sorted(path.name for path in tmp_path.iterdir()) == []  # no output, temp file or work folder
        assert not work_folder(Job(sources["opus"], [out])).exists()


def test_audio_copy_keeps_what_fits_and_aac_always_reencodes(sources, tmp_path):
    code, output = convert(sources["flac"], tmp_path / "copy.mkv", "--audio", "copy")
    assert code == 0, output
    assert audio_of(tmp_path / "copy.mkv")["packets"] == audio_of(sources["flac"])["packets"]
    code, output = convert(sources["flac"], tmp_path / "aac.mkv", "--audio", "aac")
    assert code == 0, output
    assert notes_about_audio(output) == []  # asked for
    after = audio_of(tmp_path / "aac.mkv")
    assert after["codec"] == "aac" and after["onset"] == pytest.approx(BURST, abs=0.005)


def test_audio_none_leaves_the_audio_out(sources, tmp_path):
    code, output = convert(sources["opus"], tmp_path / "silent.mov", "--audio", "none")
    assert code == 0, output
    with av.open(str(tmp_path / "silent.mov")) as container:
        assert [stream.type for stream in container.streams] == ["video"]


def test_a_rate_aac_cannot_take_is_resampled_and_surround_keeps_its_layout(tmp_path):
    source = make_source(tmp_path / "studio.mkv", "flac", rate=192000, layout="5.1", seconds=2)
    code, output = convert(source, tmp_path / "out.mov")
    assert code == 0, output
    after = audio_of(tmp_path / "out.mov")
    assert (after["codec"], after["rate"], after["layout"]) == ("aac", 96000, "5.1")
    assert after["onset"] == pytest.approx(BURST, abs=0.005)


def test_spatial_video_gets_aac_from_any_other_codec(sources, tmp_path):
    out = tmp_path / "spatial.mov"
    code, output = convert(sources["pcm_mov"], out, "-f", "spatial")
    assert code == 0, output
    assert notes_about_audio(output) == [f"note: {sources['pcm_mov'].name}: its pcm_s16le audio transcoded to AAC "
                                         "(Apple spatial video carries AAC, as the iPhone records it)"]
    after = audio_of(out)
    assert after["codec"] == "aac" and after["onset"] == pytest.approx(BURST, abs=0.005)
    code, output = convert(sources["opus"], tmp_path / "web.mov", "--preset", "vision-pro")  # a WebM into .mov
    assert code == 0, output
    assert audio_of(tmp_path / "web.mov")["codec"] == "aac"
    # AC-3 (a camcorder's or a DVD's), which .mov and .mp4 could hold as it is, still becomes AAC (as the iPhone writes).
    dolby = make_source(tmp_path / "dolby.mkv", "ac3")
    code, output = convert(dolby, tmp_path / "dolby_spatial.mp4", "-f", "spatial")
    assert code == 0, output
    assert audio_of(tmp_path / "dolby_spatial.mp4")["codec"] == "aac"


def test_segmented_and_trimmed_runs_transcode_in_sync(sources, tmp_path):
    out = tmp_path / "joined.mov"
    code, output = convert(sources["flac"], out, "--segment-seconds", "1")
    assert code == 0, output
    assert output.count("flac audio cannot go into .mov") == 1
    after = audio_of(out)
    assert after["codec"] == "aac" and after["seconds"] == pytest.approx(audio_of(sources["flac"])["seconds"], abs=0.03)
    assert after["onset"] == pytest.approx(BURST, abs=0.005)
    assert not work_folder(Job(sources["flac"], [out])).exists()
    for extra in ((), ("--segment-seconds", "1")):
        trimmed = tmp_path / f"trimmed{len(extra)}.mov"
        code, output = convert(sources["flac"], trimmed, "--start", "0.5", "--end", "2.5", *extra)
        assert code == 0, output
        after = audio_of(trimmed)
        # Trimmed by whole source packets, as copied audio is (a FLAC packet holds 0.096 s here), and
        # whole AAC frames (0.021 s).
        assert after["codec"] == "aac" and 2.0 - 0.1 <= after["seconds"] <= 2.0 + 0.096 + 0.021
        assert after["onset"] == pytest.approx(BURST - 0.5, abs=0.005)


def test_a_resumed_run_takes_a_changed_audio_choice_at_the_join(sources, tmp_path, monkeypatch):
    out = tmp_path / "film.mov"
    base = (sources["flac"], "--disparity", DISPARITY, "-o", out, "--segment-seconds", "1")
    interrupted_run(monkeypatch, 2, *base, "--audio", "none")
    code, output = run(*base)
    assert code == 0, output
    assert "resuming, 2 of" in output  # the segments hold no audio: they stay valid
    assert audio_of(out)["codec"] == "aac"
    assert not work_folder(Job(sources["flac"], [out])).exists()


def test_audio_that_can_neither_be_copied_nor_decoded_is_refused_naming_codec_and_container(tmp_path):
    """An MLP stream (Dolby's lossless family, as TrueHD; FFmpeg has no encoder for either here)
    whose packets are not MLP: the MOV muxer refuses it and it cannot be decoded to re-encode."""
    ac3 = make_source(tmp_path / "ac3.mkv", "ac3", seconds=1)
    data = ac3.read_bytes()
    assert data.count(b"A_AC3") == 1
    source = tmp_path / "mlp.mkv"
    source.write_bytes(data.replace(b"A_AC3", b"A_MLP"))
    with av.open(str(source)) as container:
        assert container.streams.audio[0].codec_context.name == "mlp"
    code, output = convert(source, tmp_path / "out.mov")
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "mlp" in lines[0] and ".mov" in lines[0] and "--audio none" in lines[0]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(("out", ".out"))] == []
    code, output = convert(source, tmp_path / "out.mov", "--audio", "none")
    assert code == 0, output


def test_audio_option_is_documented_and_a_preset_can_set_it(sources, tmp_path):
    code, output = run("--help")
    assert re.search(r"--audio +auto: copy, or AAC .*\(auto\|copy\|aac\|none\)", " ".join(output.replace("│", "").split()))
    preset = tmp_path / "quiet.toml"
    preset.write_text('format = "sbs"\n[video]\naudio = "none"\n')
    code, output = convert(sources["flac"], tmp_path / "out.mkv", "--preset", preset)
    assert code == 0, output
    assert audio_of(tmp_path / "out.mkv") == {}
    preset.write_text('format = "sbs"\n[video]\naudio = "loud"\n')
    code, output = convert(sources["flac"], tmp_path / "bad.mkv", "--preset", preset)
    assert code == 1 and output.strip().splitlines() == ["error: unknown audio choice 'loud' (choose from auto, copy, "
                                                         "aac, none)"]


def test_each_stream_is_decided_alone_and_keeps_its_language(tmp_path):
    source = make_source(tmp_path / "film.mkv", "libopus", "aac")
    code, output = convert(source, tmp_path / "out.mov")
    assert code == 0, output
    assert notes_about_audio(output) == ["note: film.mkv: its opus audio cannot go into .mov; transcoded to AAC"]
    opus, aac = audio_of(tmp_path / "out.mov", 0), audio_of(tmp_path / "out.mov", 1)
    assert (opus["codec"], opus["language"], aac["language"]) == ("aac", "eng", "fra")
    assert aac["packets"] == audio_of(source, 1)["packets"]  # copied
    assert opus["onset"] == pytest.approx(BURST, abs=0.005) and aac["onset"] == pytest.approx(BURST, abs=0.005)
