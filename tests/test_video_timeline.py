"""The source's timeline beside its pictures: chapters are kept in every container (an MP4 chapter
track is not taken for a lost subtitle), and a trimmed video (--start/--end) keeps the chapters and
subtitle cues that overlap it, cut to it, with every copied stream's flags (forced, default...).
Files are made here with PyAV."""

from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import run

WIDTH, HEIGHT, RATE = 64, 48, 25
SECONDS = 4
SAMPLE_RATE = 48000
CHAPTERS = [(0, 1200, "One"), (1200, 2600, "Two"), (2600, 4000, "Three")]  # ms
CUES = [(100, 400, "Early"), (800, 700, "Spans start"), (2700, 900, "Spans end"), (3700, 200, "Late")]  # ms
ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
              b"Style: Default,Arial,16\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, "
              b"MarginV, Effect, Text\n")
FORCED = av.stream.Disposition.forced | av.stream.Disposition.default
AUDIO_DESCRIPTION = av.stream.Disposition.visual_impaired


def make_film(path, subtitle="subrip"):
    """SECONDS of 25 fps H.264 (a keyframe every 10 frames) with CHAPTERS, one forced subtitle
    stream of CUES (`subtitle`: subrip, ass or mov_text, None for none) and an audio description
    track (AAC)."""
    milliseconds = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE, options={"g": "10", "keyint_min": "10"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE)
        sound.disposition = AUDIO_DESCRIPTION
        text = None
        if subtitle == "ass":
            text = container.add_stream("ass")  # its encoder gives the stream the ASS header
            text.codec_context.subtitle_header = ASS_HEADER
        elif subtitle is not None:
            text = container.add_mux_stream(subtitle)
        if text is not None:
            text.time_base, text.disposition = milliseconds, FORCED
            text.metadata["language"] = "eng"
        container.set_chapters([{"id": number + 1, "start": start, "end": end, "time_base": milliseconds,
                                 "metadata": {"title": title}} for number, (start, end, title) in enumerate(CHAPTERS)])
        for index in range(SECONDS * RATE):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index * 2, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            for number, (start, duration, line) in enumerate(CUES):
                if text is not None and index * 40 <= start < index * 40 + 40:
                    data = {"ass": f"{number},0,Default,,0,0,0,,{line}".encode(),
                            "mov_text": len(line).to_bytes(2, "big") + line.encode()}.get(subtitle, line.encode())
                    packet = av.Packet(data)
                    packet.stream, packet.time_base = text, milliseconds
                    packet.pts = packet.dts = start
                    packet.duration = duration
                    container.mux(packet)
        container.mux(video.encode(None))
        silence = np.zeros((2, SAMPLE_RATE * SECONDS), np.float32)
        for start in range(0, silence.shape[1], 1024):
            block = av.AudioFrame.from_ndarray(silence[:, start : start + 1024], format="fltp", layout="stereo")
            block.sample_rate, block.pts = SAMPLE_RATE, start
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    return path


def chapters(path):
    """[(start s, end s, title)] of the file's chapters."""
    with av.open(str(path)) as container:
        return [(round(float(chapter["start"] * chapter["time_base"]), 3),
                 round(float(chapter["end"] * chapter["time_base"]), 3), chapter["metadata"].get("title"))
                for chapter in container.chapters()]


def described(path):
    """What a player shows of the file: its length, chapters, subtitle cues (start s, duration s,
    text), the video's length and the flags of its audio and subtitle streams."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [packet.pts for packet in container.demux(video) if packet.size]
        frame = Fraction(1, RATE)
        video_length = float((max(frames) - min(frames)) * video.time_base + frame)
        container.seek(0)
        cues = []
        for packet in container.demux(*container.streams.subtitles):
            subtitle = packet.stream.codec_context.decode2(packet) if packet.size else None
            line = b"".join(rect.ass.split(b",", 8)[-1] for rect in subtitle) if subtitle else b""
            if line:  # MP4 fills the gaps between cues with empty samples
                cues.append((round(float(packet.pts * packet.time_base), 3),
                             round(float(packet.duration * packet.time_base), 3), line.decode()))
        flags = [(stream.type, stream.disposition) for stream in container.streams if stream.type in ("audio", "subtitle")]
        return {"length": container.duration / av.time_base, "video_length": video_length, "chapters": chapters(path),
                "cues": cues, "flags": flags}


def convert(tmp_path, source, out, *options):
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, WIDTH, dtype=np.float32), (HEIGHT, 1)))
    code, output = run(source, "--disparity", ramp, "-o", out, *options)
    assert code == 0, output
    return output


def assert_flags_kept(flags):
    """The source's audio description and forced default subtitles (MP4 adds flags of its own: its
    only audio track is the default one)."""
    (audio, audio_flags), (subtitle, subtitle_flags) = flags
    assert (audio, subtitle) == ("audio", "subtitle")
    assert audio_flags & AUDIO_DESCRIPTION and subtitle_flags & FORCED == FORCED


SOURCE_CHAPTERS = [(start / 1000, end / 1000, title) for start, end, title in CHAPTERS]


@pytest.mark.parametrize("source, out", [("film.mkv", "out.mkv"), ("film.mkv", "out.mp4"), ("film.mp4", "out.mp4"),
                                         ("film.mp4", "out.mkv"), ("film.mov", "out.mov")])
def test_chapters_are_kept_and_an_mp4_chapter_track_is_no_lost_subtitle(tmp_path, source, out):
    film = make_film(tmp_path / source, subtitle=None)
    assert chapters(film) == SOURCE_CHAPTERS
    output = convert(tmp_path, film, tmp_path / out)
    assert "left out" not in output  # MP4's chapter track was said to be a data stream left out
    assert chapters(tmp_path / out) == SOURCE_CHAPTERS
    with av.open(str(tmp_path / out)) as container:  # one chapter track at most: the muxer's own
        assert sum(stream.type == "data" for stream in container.streams) == (out != "out.mkv")


# --start 1 --end 3: "Spans start" (0.8-1.5 s) is on screen at the start, "Spans end" (2.7-3.6 s)
# at the end; chapter "One" ends 0.2 s in, "Three" is cut at the end.
TRIMMED = {"chapters": [(0.0, 0.2, "One"), (0.2, 1.6, "Two"), (1.6, 2.0, "Three")],
           "cues": [(0.0, 0.5, "Spans start"), (1.7, 0.3, "Spans end")]}


@pytest.mark.parametrize("subtitle, out, options", [
    ("subrip", "out.mkv", ()),
    ("ass", "out.mkv", ()),
    ("subrip", "out.mp4", ()),  # converted to mov_text
    ("subrip", "out.mkv", ("--segment-seconds", "1")),  # two segments, joined
    ("ass", "out.mp4", ("-f", "spatial")),
])
def test_a_trimmed_video_keeps_the_chapters_and_cues_it_overlaps_cut_to_it(tmp_path, subtitle, out, options):
    film = make_film(tmp_path / "film.mkv", subtitle)
    convert(tmp_path, film, tmp_path / out, "--start", "1", "--end", "3", *options)
    result = described(tmp_path / out)
    assert result["video_length"] == pytest.approx(2.0)
    # Nothing runs on past the video (a black tail in players): not a cue, not a chapter.
    assert result["length"] == pytest.approx(result["video_length"], abs=1 / RATE)
    assert result["chapters"] == TRIMMED["chapters"] and result["cues"] == TRIMMED["cues"]
    assert_flags_kept(result["flags"])


def test_an_untrimmed_video_in_segments_keeps_what_a_one_piece_run_keeps(tmp_path):
    film = make_film(tmp_path / "film.mkv")
    convert(tmp_path, film, tmp_path / "whole.mkv")
    convert(tmp_path, film, tmp_path / "pieces.mkv", "--segment-seconds", "1")
    whole = described(tmp_path / "whole.mkv")
    assert whole == described(tmp_path / "pieces.mkv")
    assert whole["chapters"] == SOURCE_CHAPTERS
    assert whole["cues"] == [(start / 1000, duration / 1000, line) for start, duration, line in CUES]
    assert_flags_kept(whole["flags"])


def test_a_subtitle_track_left_out_is_named_in_the_users_words(tmp_path):
    film = tmp_path / "film.mkv"
    with av.open(str(film), "w") as container:  # DVD (picture) subtitles: MOV holds none
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        pictures = container.add_mux_stream("dvd_subtitle")
        pictures.time_base, pictures.metadata["language"] = Fraction(1, 1000), "fra"
        for index in range(RATE):
            frame = av.VideoFrame.from_ndarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        packet = av.Packet(bytes(8))
        packet.stream, packet.time_base, packet.pts, packet.dts = pictures, Fraction(1, 1000), 0, 0
        container.mux(packet)
    output = convert(tmp_path, film, tmp_path / "out.mov")
    assert "film.mkv: a subtitle track (fra, DVD subtitles) left out (mov output cannot hold them)" in output
