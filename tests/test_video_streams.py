"""Streams beside the video: subtitles are copied where the output container holds them, text ones
converted to the container's own text format (mov_text in MP4), and what is left out (data streams,
attachments outside Matroska) is said in one line. Files are made here with PyAV."""

from fractions import Fraction

import av
import numpy as np

from conftest import run

WIDTH, HEIGHT = 64, 48
LINES = {"eng": [(0, 400, "Hello"), (500, 300, "World")], "fra": [(100, 500, "Bonjour")]}


def make_clip(path, subtitles=(("subrip", "eng"),), attachment=False, video_options=None):
    """One second of 25 fps H.264 with a subtitle stream per (codec, language) and maybe an attachment."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options=video_options or {})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        streams = []
        for codec, language in subtitles:
            stream = container.add_mux_stream(codec)
            stream.time_base = Fraction(1, 1000)
            stream.metadata["language"] = language
            streams.append((stream, LINES[language], codec))
        if attachment:
            container.add_attachment("font.ttf", "font/ttf", b"not really a font")
        for index in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index * 8, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            for stream, lines, codec in streams:
                for start, duration, text in lines:
                    if index * 40 <= start < index * 40 + 40:
                        data = b"\x00" + bytes([len(text)]) + text.encode() if codec == "mov_text" else text.encode()
                        packet = av.Packet(data)
                        packet.stream, packet.time_base = stream, Fraction(1, 1000)
                        packet.pts = packet.dts = start
                        packet.duration = duration
                        container.mux(packet)
        container.mux(video.encode(None))


def subtitles(path):
    """language -> [(start s, duration s, text)] of each subtitle stream, decoded."""
    with av.open(str(path)) as container:
        streams = container.streams.subtitles
        lines = {stream.index: [] for stream in streams}
        for packet in container.demux(*streams):
            if packet.size:
                subtitle = packet.stream.codec_context.decode2(packet)
                text = b"".join(rect.ass.split(b",", 8)[-1] for rect in subtitle) if subtitle else b""
                if text:  # MP4 fills the gaps between lines with empty samples
                    lines[packet.stream.index].append(
                        (float(packet.pts * packet.time_base), float(packet.duration * packet.time_base), text.decode()))
        return {stream.metadata.get("language"): (stream.codec_context.name, lines[stream.index]) for stream in streams}


def expected(language):
    return [(start / 1000, duration / 1000, text) for start, duration, text in LINES[language]]


def convert(tmp_path, clip, out):
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, WIDTH, dtype=np.float32), (HEIGHT, 1)))
    return run(clip, "--disparity", ramp, "-o", out)


def test_matroska_keeps_every_subtitle_stream_and_its_attachments(tmp_path):
    clip = tmp_path / "film.mkv"
    make_clip(clip, subtitles=(("subrip", "eng"), ("webvtt", "fra")), attachment=True)
    out = tmp_path / "film_LR.mkv"
    code, output = convert(tmp_path, clip, out)
    assert code == 0, output
    assert "left out" not in output
    found = subtitles(out)
    assert found == subtitles(clip)  # same codecs, times and text
    assert found["eng"][1] == expected("eng") and found["fra"][1] == expected("fra")
    with av.open(str(out)) as container:
        (font,) = container.streams.attachments
        assert (font.name, font.mimetype, font.data) == ("font.ttf", "font/ttf", b"not really a font")


def test_text_subtitles_become_mov_text_in_mp4(tmp_path):
    clip = tmp_path / "film.mkv"
    make_clip(clip, subtitles=(("subrip", "eng"), ("webvtt", "fra")), attachment=True)
    out = tmp_path / "film_LR.mp4"
    code, output = convert(tmp_path, clip, out)
    assert code == 0, output
    found = subtitles(out)
    assert found["eng"] == ("mov_text", expected("eng")) and found["fra"] == ("mov_text", expected("fra"))
    notes = [line for line in output.splitlines() if "left out" in line]
    assert len(notes) == 1 and "an attachment (font.ttf)" in notes[0]  # MP4 has no attachments


def test_mov_text_is_copied_unchanged_in_mp4(tmp_path):
    clip = tmp_path / "film.mp4"
    make_clip(clip, subtitles=(("mov_text", "eng"),))
    code, output = convert(tmp_path, clip, tmp_path / "out.mp4")
    assert code == 0, output
    assert subtitles(tmp_path / "out.mp4") == {"eng": ("mov_text", expected("eng"))}

    def samples(path):  # the muxer writes its own empty samples between lines
        with av.open(str(path)) as container:
            return [bytes(packet) for packet in container.demux(subtitles=0) if packet.size > 2]

    assert samples(tmp_path / "out.mp4") == samples(clip)  # copied, not re-encoded
    code, output = convert(tmp_path, clip, tmp_path / "out.mkv")  # and back to text Matroska holds
    assert code == 0, output
    assert subtitles(tmp_path / "out.mkv")["eng"][1] == expected("eng")


def write_mov(path, timecode=None, telemetry=False):
    """An MP4/MOV camera file: a timecode track (from the tag), GoPro-style telemetry (a data stream)."""
    with av.open(str(path), "w") as container:
        if timecode:
            container.metadata["timecode"] = timecode  # the muxer writes it as a tmcd track
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        data = container.add_data_stream("bin_data") if telemetry else None
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), index * 8, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            if data is not None:
                packet = av.Packet(b"GPS%d" % index)
                packet.stream, packet.time_base, packet.pts, packet.dts = data, Fraction(1, 25), index, index
                container.mux(packet)
        container.mux(video.encode(None))


def test_telemetry_is_left_out_with_one_line_and_the_timecode_kept(tmp_path):
    clip = tmp_path / "gopro.mp4"
    write_mov(clip, timecode="01:00:00:00", telemetry=True)
    with av.open(str(clip)) as container:
        assert [stream.metadata.get("handler_name") for stream in container.streams] == ["VideoHandler", "GoPro MET", "TimeCodeHandler"]
    code, output = convert(tmp_path, clip, tmp_path / "out.mp4")
    assert code == 0, output
    notes = [line for line in output.splitlines() if "left out" in line]
    assert len(notes) == 1 and "a data track (GoPro MET)" in notes[0]
    with av.open(str(tmp_path / "out.mp4")) as container:
        video, timecode = container.streams  # the telemetry is gone, the timecode track is back
        assert video.type == "video" and timecode.type == "data" and timecode.metadata["timecode"] == "01:00:00:00"
