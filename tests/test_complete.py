"""A cut-off video (an interrupted download or recording) is refused with one line that says what
was seen; a complete one whose frames are sparse (gaps in time, an AVI header counting frames its
index leaves out) converts with every frame. AVI, Matroska and MP4 files are made here with PyAV,
then cut with bytes dropped from their end, as an interrupted write leaves them."""

import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from sbsconvert.formats.riff import avi_has_index
from test_video_timing import binary_image, check_every_frame, convert, mpeg4_packets, source_frames, write_avi

RATE = 25
SPARSE_SLOTS = [0, 1, 2, 10, 11, 30, 31, 32, 40, 49]  # frame slots of 50: a capture that left out unchanged frames


def avi(path, slots=range(50), image=binary_image):
    """Intra-only MPEG-4 at a fixed quantizer in an AVI with its idx1."""
    packets = mpeg4_packets(len(slots), RATE, b_frames=0, gop=1, image=image, options={"qmin": "4", "qmax": "4"})
    write_avi(path, packets, RATE, list(slots))
    return path


def noise(index):
    """Frames of one size in bytes, far more than the AVI header: as in a real recording, the bytes
    there then tell FFmpeg the duration of the frames there."""
    return np.random.default_rng(index).integers(0, 256, (48, 64, 3), np.uint8)


def muxed(path, slots=range(50), options=None):
    """The same frames encoded into Matroska or MP4 at their slots' times."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("mpeg4", rate=RATE, options={"g": "1"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, RATE)
        for index, slot in enumerate(slots):
            frame = av.VideoFrame.from_ndarray(binary_image(index), format="rgb24")
            frame.pts, frame.time_base = slot, Fraction(1, RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


MAKERS = {".avi": avi, ".mkv": muxed, ".mp4": lambda path, slots=range(50): muxed(path, slots, {"movflags": "faststart"})}


def cut(path, share=0.6, chunk=None):
    """The file's first `share` of bytes; with `chunk` (an AVI's frame chunk id), up to the chunk
    header there, as a recorder writing whole chunks leaves it."""
    data = path.read_bytes()
    end = int(len(data) * share)
    path.write_bytes(data[: data.rindex(chunk, 0, end) if chunk else end])
    return path


def refused(tmp_path, clip, *args):
    code, output = convert(tmp_path, clip, *args)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in output, output
    assert not list(tmp_path.glob(f"{clip.stem}_LR*")) and not list(tmp_path.glob(f".{clip.stem}_LR*"))
    return errors[0]


def test_an_avi_cut_before_its_index_is_refused_by_its_header_count(tmp_path):
    """FFmpeg guesses the duration of an AVI without an index from its bytes, so the frames there
    "reach" it: only the header's count (50 frames of 0.04 s) shows that 40 % is missing."""
    clip = cut(avi(tmp_path / "cut.avi", image=noise), chunk=b"00dc")
    assert avi_has_index(clip) is False
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        guess = float(video.duration * video.time_base)
        reached = float((list(container.decode(video))[-1].pts + 1) * video.time_base)
        assert video.frames == 50 and guess < 1.3 and guess - reached <= 2 / RATE  # within two frames of the guess
    error = refused(tmp_path, clip)
    assert "truncated: its header counts 50 frames of 0.040 s (2.00 s) but the data stops at" in error
    assert "the file has no index" in error


def test_a_long_cut_avi_is_refused_before_its_segments_are_converted(tmp_path):
    clip = cut(avi(tmp_path / "cut.avi", range(100), image=noise), chunk=b"00dc")
    assert "its header counts 100 frames" in refused(tmp_path, clip, "--segment-seconds", "1")


def test_a_whole_avi_without_an_index_converts(tmp_path):
    """Its frames reach what its header counts: complete, though the writer left no idx1."""
    clip = avi(tmp_path / "whole.avi")
    data = clip.read_bytes()
    at = data.rindex(b"idx1")
    size = 8 + struct.unpack_from("<I", data, at + 4)[0]
    clip.write_bytes(b"RIFF" + struct.pack("<I", len(data) - size - 8) + data[8:at] + data[at + size :])
    assert avi_has_index(clip) is False
    images, times = source_frames(clip)
    code, output = convert(tmp_path, clip)
    assert code == 0, output
    check_every_frame(tmp_path / "whole_LR.mkv", images, times)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_cut_matroska_or_mp4_is_refused_by_the_duration_in_its_header(tmp_path, suffix):
    clip = cut(MAKERS[suffix](tmp_path / f"cut{suffix}"), 0.7)
    error = refused(tmp_path, clip)
    assert "truncated: its frames stop at" in error and "of the 2.00 s the file says it lasts" in error


@pytest.mark.parametrize("segments", [(), ("--segment-seconds", "1")], ids=["one piece", "segments"])
@pytest.mark.parametrize("suffix", sorted(MAKERS))
def test_a_complete_sparse_video_converts_with_every_frame(tmp_path, suffix, segments):
    clip = MAKERS[suffix](tmp_path / f"sparse{suffix}", SPARSE_SLOTS)
    images, times = source_frames(clip)
    assert times == [slot / RATE for slot in SPARSE_SLOTS]
    code, output = convert(tmp_path, clip, *segments)
    assert code == 0, output
    check_every_frame(next(tmp_path.glob("sparse_LR.*")), images, times)


def riff(kind, payload, form=b""):
    return kind + struct.pack("<I", len(form + payload)) + form + payload + b"\0" * (len(payload) % 2)


def test_avi_index_is_found_in_idx1_or_opendml_indx_and_only_in_whole_files(tmp_path):
    header = riff(b"LIST", riff(b"avih", bytes(56)), b"hdrl")
    movi = riff(b"LIST", riff(b"00dc", b"frame"), b"movi")
    odml_header = riff(b"LIST", riff(b"LIST", riff(b"strh", bytes(56)) + riff(b"indx", bytes(24)), b"strl"), b"hdrl")
    more = riff(b"RIFF", riff(b"LIST", riff(b"00dc", b"later frame"), b"movi"), b"AVIX")
    files = {
        "indexed": (riff(b"RIFF", header + movi + riff(b"idx1", bytes(16)), b"AVI "), True),
        "no index": (riff(b"RIFF", header + movi, b"AVI "), False),
        "cut index": (riff(b"RIFF", header + movi + riff(b"idx1", bytes(16)), b"AVI ")[:-4], False),
        "opendml": (riff(b"RIFF", odml_header + movi, b"AVI ") + more, True),
        "opendml cut": (riff(b"RIFF", odml_header + movi, b"AVI ") + more[:-6], False),
        "index named in the frames only": (riff(b"RIFF", header + riff(b"LIST", riff(b"idx1", b""), b"movi"), b"AVI "), False),
        "wave": (riff(b"RIFF", riff(b"fmt ", bytes(16)), b"WAVE"), None),
    }
    for name, (data, expected) in files.items():
        path = tmp_path / "file.avi"
        path.write_bytes(data)
        assert avi_has_index(path) is expected, name
