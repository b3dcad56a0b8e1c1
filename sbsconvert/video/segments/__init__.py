"""Long videos in segments: convert runs of frames that start at keyframes one at a time, keep each
finished one in a work folder beside the output, and join them at the end without re-encoding.

A crash, a Ctrl-C or a reboot then costs at most the segment in progress: the next run reads the
work folder's manifest and goes on with the unfinished segments (see `--resume`). The segments are
independent jobs, so they can also run on several workers at once (sbsconvert.cluster).

Each segment is encoded on its own (a fresh encoder: it starts with a closed GOP) with the same
settings, into a packet file that keeps the encoder's timestamps exactly; joining muxes those
packets into the final container through the same VideoWriter a one-piece run uses, which adds the
source's audio, tags and stereo metadata, so only the video packets differ from a one-piece encode.

Temporal state: each segment first decodes the frames before its start (WARMUP_FRAMES, or as many as
the temporal filter needs to forget its start: temporal.warmup_frames) and feeds them to the
disparity smoothing only (no rendering, no output). The exponential average forgets its
start geometrically (0.6^12 = 0.2 % of the difference left at the default weight, well under a
pixel of shift at 1080p), so the seam is invisible, and every segment is a pure function of the
source and the settings: resuming, or running segments on other machines, gives the same bytes.
Carrying the state over instead would chain every segment to the one before it. The smoothing is
also centred (it looks LOOK_AHEAD_FRAMES ahead), so a segment also decodes and smooths the frames
just after its end, as a one-piece run would have, and drops them before rendering.

The package, in the order of the flow: index (the source's frames and the trimming), plan (the
segments and their shot anchors), workfolder (the manifest a run resumes from), join (the segments'
files, written and joined) and driver (convert_in_segments, which runs them all).
"""

from sbsconvert.video.segments.driver import (DEFAULT_SEGMENT_SECONDS, SegmentOptions, SegmentRunner,
                                              convert_in_segments, refuse_unwritable_audio)
from sbsconvert.video.segments.index import FrameIndex, parse_time, read_index, select_frames
from sbsconvert.video.segments.join import (SegmentPackets, SegmentWriter, SpatialSegmentWriter, join_frame_folders,
                                            join_spatial, join_videos, load_packets, pixel_source, segment_writers)
from sbsconvert.video.segments.plan import (LOOK_AHEAD_FRAMES, WARMUP_FRAMES, Segment, assign_anchors, find_shot_starts,
                                            plan_segments)
from sbsconvert.video.segments.workfolder import (MANIFEST_VERSION, WorkFolder, settings_hash, source_identity,
                                                  work_folder)

__all__ = [
    "DEFAULT_SEGMENT_SECONDS", "LOOK_AHEAD_FRAMES", "MANIFEST_VERSION", "WARMUP_FRAMES",
    "FrameIndex", "Segment", "SegmentOptions", "SegmentPackets", "SegmentRunner", "SegmentWriter",
    "SpatialSegmentWriter", "WorkFolder",
    "assign_anchors", "convert_in_segments", "find_shot_starts", "join_frame_folders", "join_spatial", "join_videos",
    "load_packets", "parse_time", "pixel_source", "plan_segments", "read_index", "refuse_unwritable_audio",
    "segment_writers", "select_frames", "settings_hash", "source_identity", "work_folder",
]
