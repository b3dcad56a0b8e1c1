"""Every source frame reaches the output once, in presentation order, with its own timestamp: AVIs
with packed B-frames (shuffled decoded timestamps) and with sparse indexes (fewer frames than the
header counts), variable frame rate MP4/MKV, and real cuts still refused. Files are made here with
PyAV; the left eye (the input view) must equal the source frame."""

from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import run
from sbsconvert.progress import LogProgress
from sbsconvert.video.segments import driver as segments_driver
from sbsconvert.video.decode import VideoReader, presentation_order

WIDTH, HEIGHT = 64, 48


def numbered_image(index):
    """A flat grey that rises frame by frame, plus a block moving right: each frame is recognisable."""
    image = np.full((HEIGHT, WIDTH, 3), (index * 12) % 256, np.uint8)
    image[4:12, 2 * index : 2 * index + 8] = 255
    return image


def binary_image(index):
    """Bars that spell the frame's number in binary: every frame of a longer clip is unlike the others."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(8):
        image[:, bit * 8 : bit * 8 + 8] = 255 * (index >> bit & 1)
    return image


def mpeg4_packets(count, rate, b_frames, gop=100, image=numbered_image, options=None):
    """MPEG-4 Part 2 packets (decode order) of `count` test images, as XviD/DivX would write them."""
    codec = av.CodecContext.create("mpeg4", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base, codec.framerate = Fraction(1, rate), rate
    codec.max_b_frames, codec.gop_size = b_frames, gop
    codec.options = options or {}
    codec.open()
    packets = []
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(image(index), format="rgb24")
        frame.pts, frame.time_base = index, codec.time_base
        packets += [bytes(packet) for packet in codec.encode(frame)]
    return packets + [bytes(packet) for packet in codec.encode(None)]


def vop_type(packet):
    start = packet.find(b"\x00\x00\x01\xb6")  # VOP start code, then 2 bits of coding type
    return "IPBS"[packet[start + 4] >> 6]


def not_coded_vop(rate):
    """An N-VOP: a P-VOP header with vop_coded = 0, the placeholder DivX writes after a packed pair."""
    bits = "01" + "0" + "1" + "0" * (rate - 1).bit_length() + "1" + "0"  # type, time base, marker, increment, marker, coded
    bits += "0" + "1" * ((-len(bits) - 1) % 8)  # stuffing to the byte boundary
    return b"\x00\x00\x01\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def packed_b_frames(packets, rate):
    """DivX 5 "packed bitstream": each P-VOP shares its AVI chunk with the B-VOP after it and an
    N-VOP takes the B's slot; the user data string ending in "p" tells decoders so."""
    first = packets[0]
    start = first.find(b"\x00\x00\x01\xb2")
    end = first.find(b"\x00\x00\x01", start + 4)
    chunks = [first[:start] + b"\x00\x00\x01\xb2DivX503b1393p" + first[end:]]
    index = 1
    while index < len(packets):
        if index + 1 < len(packets) and vop_type(packets[index + 1]) == "B":
            chunks += [packets[index] + packets[index + 1], not_coded_vop(rate)]
            index += 2
        else:
            chunks.append(packets[index])
            index += 1
    return chunks


def write_avi(path, chunks, rate, slots=None):
    """An AVI holding one chunk per frame slot (`slots`: the frame number of each, default 0, 1, 2...)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.time_base = Fraction(1, rate)
        for chunk, slot in zip(chunks, slots if slots is not None else range(len(chunks))):
            packet = av.Packet(chunk)
            packet.stream, packet.time_base = stream, Fraction(1, rate)
            packet.pts = packet.dts = slot
            packet.is_keyframe = vop_type(chunk) == "I"
            container.mux(packet)


def source_frames(path):
    """(images, timestamps in seconds) as FFmpeg decodes the file, untouched."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [frame.to_ndarray(format="rgb24") for frame in frames], [frame.time for frame in frames]


def convert(tmp_path, clip, *args):
    ramp = tmp_path / "ramp.npy"
    np.save(ramp, np.tile(np.linspace(0, 1, WIDTH, dtype=np.float32), (HEIGHT, 1)))
    return run(clip, "--disparity", ramp, "-v", *args)


def check_every_frame(output, images, times):
    """The output holds each source image once, in order, at its time, as its left eye."""
    out_images, out_times = source_frames(output)
    assert len(out_images) == len(images)
    assert np.allclose(out_times, times, atol=1e-3)
    for out, image in zip(out_images, images):
        assert np.abs(out[:, :WIDTH].astype(np.float32) - image).mean() < 4  # of 255: the encode's loss only


def test_packed_b_frames_keep_every_frame_in_order(tmp_path):
    clip = tmp_path / "divx.avi"
    write_avi(clip, packed_b_frames(mpeg4_packets(15, 25, b_frames=1), 25), 25)
    images, times = source_frames(clip)
    assert times != sorted(times)  # the decoder's timestamps really come shuffled (1, 3, 2, 5, 4...)
    for index, image in enumerate(images):  # while its pictures are in display order
        assert abs(int(image[30:, :, 0].mean()) - 12 * index) < 4
    code, output = convert(tmp_path, clip)
    assert code == 0, output
    assert "divx.avi: 15 frames" in output
    check_every_frame(tmp_path / "divx_LR.mkv", images, sorted(times))


def packed_clip(path, b_frames=1, count=75, gop=12):
    """DivX with packed B-frames at 25 fps (3 s), a keyframe every `gop` frames, each frame unlike the others."""
    write_avi(path, packed_b_frames(mpeg4_packets(count, 25, b_frames, gop, binary_image), 25), 25)
    return path


def keyframe_times(path):
    with av.open(str(path)) as container:
        return [float(packet.pts * packet.time_base) for packet in container.demux(video=0) if packet.is_keyframe]


@pytest.mark.parametrize("b_frames", [1, 2])
def test_a_seek_into_packed_b_frames_gives_each_frame_its_whole_decode_stamp(tmp_path, b_frames):
    """A seek finds keyframes by decode time, and a keyframe's chunk also packs the B-frame shown
    before it: wherever the reader starts, each frame from there on is the one a whole decode gives."""
    clip = packed_clip(tmp_path / "divx.avi", b_frames, count=40)
    with VideoReader(clip) as reader:
        whole = [(frame.pts, frame.pixels) for frame in reader.frames()]
    for number, (start, _) in enumerate(whole):
        with VideoReader(clip) as reader:
            part = [(pts, pixels) for pts, pixels in ((frame.pts, frame.pixels) for frame in reader.frames(seek=start))
                    if pts >= start]
        assert [pts for pts, _ in part] == [pts for pts, _ in whole[number:]], f"seek to {start}"
        assert all(np.array_equal(ours, theirs) for (_, ours), (_, theirs) in zip(part, whole[number:])), f"seek to {start}"


@pytest.fixture
def kept_progress(monkeypatch):
    """The progress counters of segmented runs (real ones, silent), to compare their counts with the output."""
    kept = []

    def counter(total, *, desc, unit, enabled=True, counts_job=False):
        kept.append(LogProgress(total, desc=desc, unit=unit, enabled=False))
        return kept[-1]

    monkeypatch.setattr(segments_driver, "progress_counter", counter)
    return kept


def check_trimmed_packed_run(tmp_path, clip, kept_progress, *args, end=None, max_fps=None):
    """Convert `clip` from its second keyframe (its chunk packs the B-frame shown at that time) with
    `args`: the output holds every source frame of the range (at most `max_fps` a second) once, in
    order, at its time from the start, and progress counted exactly those frames."""
    start = keyframe_times(clip)[1]
    code, output = convert(tmp_path, clip, "--start", start, *args)
    assert code == 0, output
    images, times = source_frames(clip)
    kept, slots = [], set()
    for image, time in zip(images, sorted(times)):
        slot = int(time * max_fps + 1e-9) if max_fps else time
        if start - 1e-9 <= time < (end or float("inf")) and slot not in slots:
            slots.add(slot)
            kept.append((image, time - start))
    check_every_frame(tmp_path / "divx_LR.mkv", [image for image, _ in kept], [time for _, time in kept])
    assert (kept_progress[-1].total, kept_progress[-1].done) == (len(kept), len(kept))


@pytest.mark.parametrize("args, end, max_fps", [
    ((), None, None),
    (("--segment-seconds", "1"), None, None),
    (("--end", "2.5"), 2.5, None),
    (("--max-fps", "12.5", "--segment-seconds", "1"), None, 12.5),
])
def test_packed_b_frames_trimmed_or_in_segments_write_each_frame_once(tmp_path, kept_progress, args, end, max_fps):
    clip = packed_clip(tmp_path / "divx.avi")
    check_trimmed_packed_run(tmp_path, clip, kept_progress, *args, end=end, max_fps=max_fps)


def test_sparse_avi_index_is_complete_by_time(tmp_path):
    """A capture tool's AVI: the header counts 50 frames, the index holds the 10 that changed."""
    slots = [0, 1, 2, 10, 11, 30, 31, 32, 40, 49]
    clip = tmp_path / "capture.avi"
    write_avi(clip, mpeg4_packets(len(slots), 25, b_frames=0), 25, slots)
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames == 50
    images, times = source_frames(clip)
    assert times == [slot / 25 for slot in slots]
    code, output = convert(tmp_path, clip)
    assert code == 0, output
    check_every_frame(tmp_path / "capture_LR.mkv", images, times)


def test_cut_avi_is_still_reported_as_truncated(tmp_path):
    clip = tmp_path / "cut.avi"
    write_avi(clip, mpeg4_packets(50, 25, b_frames=0), 25)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])  # the index at the end goes too
    code, output = convert(tmp_path, clip)
    assert code == 1 and "truncated" in output and "Traceback" not in output
    assert not (tmp_path / "cut_LR.mkv").exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_with_b_frames(tmp_path, suffix):
    """H.264 with B-frames (decode order differs from display order) at irregular times."""
    pts = [0, 3, 4, 9, 20, 21, 22, 40, 41, 55, 56, 57]  # 1/100 s
    clip = tmp_path / f"vfr{suffix}"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"bf": "3", "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 100)
        for index, stamp in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(numbered_image(index), format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, 100)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    images, times = source_frames(clip)
    assert np.allclose(times, [stamp / 100 for stamp in pts])
    code, output = convert(tmp_path, clip)
    assert code == 0, output
    check_every_frame(tmp_path / f"vfr_LR{suffix}", images, times)


def test_presentation_order_sorts_stamps_without_dropping_frames():
    frames = list("abcdefgh")
    stamps = dict(zip(frames, [1, 3, 2, 5, 4, None, 6, 6]))
    paired = list(presentation_order(frames, stamps.get, step=1, window=2))
    assert [frame for frame, _ in paired] == frames  # decoder order is display order: kept
    assert [pts for _, pts in paired] == [1, 2, 3, 4, 5, 6, 7, 8]  # sorted; the missing and the repeated ones move on
    assert list(presentation_order([], stamps.get, step=1)) == []
    # A clock that jumps back (two recordings joined) goes on at the nominal rate, 10 ticks a frame.
    joined = list(range(0, 100, 10)) + [0, 10, 20]
    assert [pts for _, pts in presentation_order(range(13), joined.__getitem__, step=10)] == list(range(0, 130, 10))


def test_matroska_total_comes_from_duration(tmp_path):
    clip = tmp_path / "vfr.mkv"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(numbered_image(index), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with VideoReader(clip) as reader:
        assert reader.info.frame_count == 0 and reader.info.expected_frames == 10
        assert len(list(reader.frames())) == 10


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_clip_that_starts_late_is_complete(tmp_path, suffix):
    """Cut from the middle of a recording with its timestamps kept: the first frame is at 2 s."""
    clip = tmp_path / f"late{suffix}"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(numbered_image(index), format="rgb24")
            frame.pts = 50 + index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    images, times = source_frames(clip)
    assert times[0] >= 2
    code, output = convert(tmp_path, clip)
    assert code == 0, output
    check_every_frame(tmp_path / f"late_LR{suffix}", images, times)
