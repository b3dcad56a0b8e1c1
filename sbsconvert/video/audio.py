"""The audio of a video output, decided before the first frame is encoded.

Each source audio stream is copied packet for packet where the output container holds it, and
re-encoded as AAC-LC where it does not (Opus, FLAC or TrueHD in MOV, PCM without a channel layout
in MP4) or where the output is an Apple spatial video (the iPhone records AAC). Whether a container
holds a stream is asked of FFmpeg's muxer itself: a few of the stream's first packets are muxed into
an in-memory file of that format, header to trailer, since some refusals only come when the trailer
is written. A stream to re-encode is test-decoded there too, so a run that cannot write its audio
stops before any frame is encoded, naming the codec and the container.

The re-encoded audio keeps the source's timestamps (so it stays in sync), its channel layout (a
layout without channel names gets the usual one for its channel count) and its sample rate, unless
the AAC encoder cannot take that rate (then the nearest one it can).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import av.logging

from sbsconvert.errors import SbsError, first_line

AAC_BITS_PER_CHANNEL = 96_000  # 192 kbit/s for stereo: transparent for most listeners with FFmpeg's AAC
_TRIAL_PACKETS = 8  # of each stream, muxed (and decoded) to test a container before any work


@dataclass(frozen=True)
class AudioPlan:
    """What happens to each of the source's audio streams (by stream index): those in neither set
    are copied unchanged."""

    transcoded: frozenset[int] = frozenset()  # re-encoded as AAC-LC
    dropped: frozenset[int] = frozenset()  # left out
    notes: tuple[str, ...] = ()


def plan_audio(source: Path, container: str, name: str, mode: str, *, spatial: bool = False) -> AudioPlan:
    """Decide the audio of `source` in an output of FFmpeg format `container` (called `name`, such
    as .mov, in messages) for --audio `mode` (AUDIO_CHOICES); `spatial`: an Apple spatial video.
    Refuses, in one line, what cannot be written."""
    transcoded, notes = set(), []
    try:
        with av.open(str(source)) as original:
            streams = list(original.streams.audio)
            if mode == "none":
                return AudioPlan(dropped=frozenset(stream.index for stream in streams))
            trials = _first_packets(original, streams) if streams else {}
            for stream in streams:
                codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
                refusal = None if mode == "aac" else _refusal(stream, trials[stream.index], container)
                if mode == "copy" and refusal is not None:
                    raise SbsError(f"{source}: its {codec} audio cannot go into {name} ({refusal}); `audio` auto "
                                   "or aac re-encodes it as AAC, `audio` none leaves it out")
                if mode == "aac" or refusal is not None or (spatial and mode == "auto" and codec != "aac"):
                    _check_decodes(stream, trials[stream.index], source, codec, name)
                    transcoded.add(stream.index)
                    if refusal is not None:
                        notes.append(f"{source.name}: its {codec} audio cannot go into {name}; transcoded to AAC")
                    elif mode == "auto":
                        notes.append(f"{source.name}: its {codec} audio transcoded to AAC (Apple spatial video "
                                     "carries AAC, as the iPhone records it)")
    except av.FFmpegError as error:
        raise SbsError(f"{source}: cannot read its audio ({first_line(error)})") from None
    return AudioPlan(transcoded=frozenset(transcoded), notes=tuple(notes))


def _first_packets(original: av.container.InputContainer, streams: list[av.audio.stream.AudioStream]
                   ) -> dict[int, list[av.Packet]]:
    """Up to _TRIAL_PACKETS packets from the start of each stream."""
    found: dict[int, list[av.Packet]] = {stream.index: [] for stream in streams}
    for packet in original.demux(*streams):
        if packet.dts is None or packet.size == 0:
            continue
        kept = found[packet.stream_index]
        if len(kept) < _TRIAL_PACKETS:
            kept.append(packet)
        if all(len(kept) >= _TRIAL_PACKETS for kept in found.values()):
            break
    return found


def _refusal(stream: av.audio.stream.AudioStream, packets: list[av.Packet], container: str) -> str | None:
    """Why FFmpeg's `container` muxer refuses `stream` copied as it is (its first `packets` muxed
    into a file in memory), or None when it takes it."""
    with _logged_errors() as logged:
        try:
            with av.open(io.BytesIO(), "w", format=container) as trial:
                copy = trial.add_stream_from_template(stream)
                for packet in packets:
                    packet.stream = copy
                    trial.mux(packet)
        except av.FFmpegError:
            # The muxer's words, if it said any; PyAV's message names only the in-memory file.
            return logged[-1][2].strip().rstrip(".") if logged else "the muxer does not take it"
        except ValueError as error:  # PyAV's own check of the muxer's codec list
            return first_line(error)
    return None


@contextlib.contextmanager
def _logged_errors() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's error messages of this thread meanwhile, kept rather than printed (PyAV hears
    FFmpeg's log only while a level is set)."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logged:
            yield logged
    finally:
        av.logging.set_level(level)


def _check_decodes(stream: av.audio.stream.AudioStream, packets: list[av.Packet], source: Path, codec: str,
                   name: str) -> None:
    """Refuse a stream that cannot be re-encoded because it cannot be decoded here."""
    try:
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise ValueError("no decoder for it here")
        decoded = sum(len(stream.codec_context.decode(packet)) for packet in [*packets, None])
        if not decoded:  # a parser or decoder may drop what it cannot read without an error
            raise ValueError("no sound decoded from its first packets")
    except (av.FFmpegError, ValueError) as error:
        raise SbsError(f"{source}: its {codec} audio cannot go into {name} as it is, nor be decoded to re-encode it "
                       f"as AAC ({first_line(error)}); `audio` none leaves it out") from None


class AacEncoder:
    """Re-encode one source audio stream as AAC-LC into a new stream of `output`, packet by packet."""

    def __init__(self, stream: av.audio.stream.AudioStream, output: av.container.OutputContainer):
        self.codec = stream.codec_context.name
        self.output_name = output.format.name
        self.decoder = stream.codec_context
        rate = aac_rate(stream.codec_context.sample_rate)
        self.stream = output.add_stream("aac", rate=rate, layout=aac_layout(stream.codec_context.layout))
        self.stream.bit_rate = AAC_BITS_PER_CHANNEL * self.stream.codec_context.channels
        self.stream.time_base = Fraction(1, rate)
        self.stream.disposition = stream.disposition

    def encode(self, packet: av.Packet | None) -> list[av.Packet]:
        """The AAC packets that `packet` of the source completes (None: flush all that remain)."""
        try:
            packets = []
            for frame in self.decoder.decode(packet):
                packets += self.stream.encode(frame)
            if packet is None:
                packets += self.stream.encode(None)
            return packets
        except (av.FFmpegError, ValueError) as error:
            raise SbsError(f"cannot re-encode the {self.codec} audio as AAC for {self.output_name} "
                           f"({first_line(error)})") from None


def aac_rate(rate: int) -> int:
    """`rate`, or the nearest sample rate FFmpeg's AAC encoder takes."""
    rates = av.Codec("aac", "w").audio_rates or [rate]
    return rate if rate in rates else min(rates, key=lambda candidate: (abs(candidate - rate), -candidate))


def aac_layout(layout: av.AudioLayout) -> av.AudioLayout:
    """`layout` if the AAC encoder takes it, else the usual layout of as many channels (a layout
    without channel names, as Matroska's PCM has), else stereo."""
    for candidate in (layout, av.AudioLayout(f"{layout.nb_channels}c"), av.AudioLayout("stereo")):
        context = av.CodecContext.create("aac", "w")
        context.layout, context.sample_rate, context.format = candidate, 48000, "fltp"
        try:
            context.open()
        except (av.FFmpegError, ValueError):
            continue
        return candidate
    raise SbsError("FFmpeg's AAC encoder does not work here")
