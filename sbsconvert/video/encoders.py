"""Which FFmpeg encoder writes the video: software (libx264/libx265) or a hardware one (NVENC,
VideoToolbox, Quick Sync, AMF), probed once by opening it on a small frame, and how each is told
the quality or bitrate wanted.

A hardware encoder can be compiled into FFmpeg and still not work here (no GPU, no driver, a
container without the device), so being listed proves nothing: only opening one does.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import av
import numpy as np

from sbsconvert.choices import FORMAT_OF, HARDWARE, SOFTWARE
from sbsconvert.errors import SbsError, first_line

_PROBE_SIZE = 256  # some hardware encoders refuse tiny frames
# Same layout and depth, in the formats hardware encoders take when they lack the planar ones.
_SEMI_PLANAR = {"yuv420p": "nv12", "yuv420p10le": "p010le"}


def video_format(codec: str, pixel_format: str) -> str:
    """h264 or hevc: what `codec` (a format, an encoder or auto) writes. auto picks HEVC for
    10-bit pixels (H.264 players rarely decode 10-bit), else H.264."""
    if codec == "auto":
        return "hevc" if pixel_format.endswith("10le") else "h264"
    return FORMAT_OF.get(codec, codec)


def encoder_pixel_format(encoder: str, pixel_format: str) -> str:
    """`pixel_format`, or its semi-planar twin when the encoder only takes that."""
    formats = {form.name for form in av.Codec(encoder, "w").video_formats or ()}
    if not formats or pixel_format in formats:
        return pixel_format
    return _SEMI_PLANAR.get(pixel_format, pixel_format)


@functools.cache
def probe(encoder: str, pixel_format: str) -> str | None:
    """None when `encoder` opens and encodes a frame here, else why not (one line). Asked once per
    process for each encoder and pixel format."""
    if encoder not in av.codecs_available:
        return "not in this FFmpeg build"
    if encoder in SOFTWARE.values():
        return None  # needs no device: being built in is enough
    try:
        context = av.CodecContext.create(encoder, "w")
        context.width = context.height = _PROBE_SIZE
        context.pix_fmt = encoder_pixel_format(encoder, pixel_format)
        context.time_base = Fraction(1, 30)
        context.framerate = Fraction(30)
        grey = np.full((_PROBE_SIZE, _PROBE_SIZE, 3), 128, np.uint8)
        frame = av.VideoFrame.from_ndarray(grey, format="rgb24").reformat(format=context.pix_fmt)
        context.encode(frame)
        context.encode(None)
    except (av.FFmpegError, ValueError, OSError) as error:
        return getattr(error, "strerror", None) or first_line(error)  # "Operation not permitted", not the call
    return None


def pick_encoder(codec: str, pixel_format: str) -> tuple[str, str | None]:
    """(the FFmpeg encoder for `codec`, a one-line note when a hardware encoder asked for by name
    does not work here and software stands in for it). Refused when software is missing too."""
    kind = video_format(codec, pixel_format)
    software = SOFTWARE[kind]
    if codec == "auto":
        for encoder in HARDWARE[kind]:
            if probe(encoder, pixel_format) is None:
                return encoder, None
        codec = software
    if codec in SOFTWARE:
        codec = software
    problem = probe(codec, pixel_format)
    if problem is None:
        return codec, None
    if codec != software and probe(software, pixel_format) is None:
        return software, f"the {codec} encoder does not work here ({problem}); using {software}"
    others = [name for name in SOFTWARE.values() if name != software and probe(name, "yuv420p") is None]
    hint = f"; use `codec` {FORMAT_OF[others[0]]}" if others else ""
    raise SbsError(f"this FFmpeg build has no working {codec} encoder for {kind} ({problem}){hint}")


# x265 holds back at most this many frames to reorder B-frames (two with b-pyramid, its default).
X265_REORDER_DELAY = 2


def settle_x265_dts(encoder: str, packets: list[av.Packet], frames_given: int) -> list[av.Packet]:
    """`packets` of `encoder`, with the decode timestamps libx265 garbles for very short encodes fixed.

    x265 derives the first packets' DTS from the time between the first frame and the frame after
    its reorder delay, and leaves that uninitialised when the encode is given `X265_REORDER_DELAY`
    frames or fewer: the DTS is then whatever memory held (muxers refuse it as pts < dts, or write
    nonsense). So few frames hold no B-frame, so they decode in presentation order: DTS = PTS."""
    if encoder == SOFTWARE["hevc"] and frames_given <= X265_REORDER_DELAY:
        for packet in packets:
            packet.dts = packet.pts
    return packets


# x264's AVX-512 routines are not deterministic: on a Zen 4 EPYC about 1 encode in 30 (320x240, 12
# frames) came out different from the same frames, from the first packet on; up to AVX2, 0 in 700,
# as fast and as small. Resumed and Ray runs rely on equal frames encoding to equal bytes.
# Named only on CPUs with AVX-512 (which all have every flag below), so no CPU is offered code it lacks.
_X264_UP_TO_AVX2 = "MMX2,SSE,SSE2,LZCNT,SSE3,SSSE3,SSE4.1,SSE4.2,AVX,FMA3,BMI1,BMI2,AVX2"


@functools.cache
def x264_params() -> str | None:
    """libx264's x264-params: its CPU routines held to AVX2 where the CPU has AVX-512, else None."""
    from llvmlite.binding import get_host_cpu_features  # numba's LLVM, which sees what the OS enables

    try:
        avx512 = bool(get_host_cpu_features().get("avx512f"))
    except RuntimeError:  # a CPU LLVM cannot describe: not one of the x86 ones concerned
        avx512 = False
    return f"asm={_X264_UP_TO_AVX2}" if avx512 else None


def rate_options(encoder: str, crf: int | None) -> dict[str, str]:
    """Encoder options for constant quality `crf` (0-51, lower is better), where the encoder has a
    constant-quality mode; {} where it has none (it is then given a bitrate instead)."""
    if crf is None:
        return {}
    if encoder in SOFTWARE.values():
        return {"crf": str(crf)}
    if encoder.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(crf)}
    if encoder.endswith("_qsv"):
        return {"global_quality": str(crf)}
    return {}


def has_constant_quality(encoder: str) -> bool:
    return bool(rate_options(encoder, 0))
