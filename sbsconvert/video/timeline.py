"""What of the source's timeline a trimmed video keeps: the chapters and subtitle cues that overlap
the kept stretch, cut to it and moved earlier with the video (which starts at 0).

A window is (start, end) in seconds of the source, `end` infinite when only --start was given.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av

Window = tuple[float, float]


def clip_span(begin: int, end: int, time_base: Fraction, window: Window) -> tuple[int, int] | None:
    """The span [begin, end) (in ticks of `time_base`) cut to `window` and moved earlier by its
    start, or None when it lies outside. An instant (end == begin) is kept when it is inside."""
    start, stop = window
    first = round(Fraction(start) / time_base)
    last = math.inf if math.isinf(stop) else round(Fraction(stop) / time_base)
    if begin >= last or (end <= first and begin < first):
        return None
    return max(begin, first) - first, min(end, last) - first


def chapters_in(chapters: list[dict], window: Window | None) -> list[dict]:
    """The chapters (as PyAV's Container.chapters() gives them) that overlap `window`, cut to it and
    moved earlier by its start; all of them, unchanged, without a window."""
    if window is None:
        return chapters
    kept = []
    for chapter in chapters:
        span = clip_span(chapter["start"], chapter["end"], chapter["time_base"], window)
        if span is not None:
            kept.append({**chapter, "start": span[0], "end": span[1]})
    return kept


def clip_cue(packet: av.Packet, window: Window) -> bool:
    """Cut a subtitle packet to `window` and move it earlier by its start: a cue already on screen
    at the start is shown from 0 for the rest of its time, one still on screen at the end stops
    there. False when the cue lies outside the window (or starts before it with no known duration)."""
    span = clip_span(packet.pts, packet.pts + (packet.duration or 0), packet.time_base, window)
    if span is None:
        return False
    shift = packet.pts - span[0]
    packet.pts, packet.dts = span[0], packet.dts - shift
    if packet.duration:
        packet.duration = span[1] - span[0]
    return True


def is_chapter_track(stream: av.stream.Stream) -> bool:
    """Whether `stream` is an MP4/MOV chapter track (a text track that FFmpeg reads as the file's
    chapters, and discards as a stream): the output's chapters are written from those."""
    return stream.type == "data" and stream.discard == av.stream.Discard.all and bool(stream.container.chapters())
