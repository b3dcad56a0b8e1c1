"""`sbsconvert info`: what a photo or video says about its stereo, as a headset or player reads it.

Read only: the file's headers and boxes (with the parameter sets and SEI of the decoder
configuration records), plus the first packet (and, for a multiview stream, its first picture)
of a video. Each file gives a Report: the container and its streams; the stereo
signalling it carries (MP4 `st3d`, Matroska StereoMode, MV-HEVC views and Apple's `vexu` boxes,
the HEIF `ster` group and camera properties, MPO's multi-picture entries); the layout its name
implies; and two verdicts: whether Apple shows it as spatial, and how a Quest player shows it.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from sbsconvert.errors import SbsError, first_line
from sbsconvert.layout import LAYOUTS

ISO_BMFF_PHOTO_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"mif2", b"msf1", b"avif", b"avis"})
HEVC_PROFILES = {1: "Main", 2: "Main 10", 3: "Main Still Picture", 4: "Range Extensions", 6: "Multiview Main",
                 7: "Scalable Main", 8: "3D Main", 9: "Screen Content", 10: "Scalable Range Extensions"}
# SEI payload types of H.265 Annex F/G (multi-layer and 3D), named in the report when present.
SEI_NAMES = {4: "user data registered (ITU-T T.35)", 5: "user data unregistered (e.g. encoder settings)",
             137: "mastering display colour volume", 144: "content light level", 176: "3D reference displays info", 177: "depth representation info", 178: "multiview scene info",
             179: "multiview acquisition info", 180: "multiview view position"}
ST3D_NAMES = {0: "mono", 1: "top-bottom (left on top)", 2: "left-right (left first)"}
_ST3D_WORDS = {ST3D_NAMES[1]: "top-bottom", ST3D_NAMES[2]: "side by side"}
_SCALABLE_MAIN = 7  # general_profile_idc
_PRIMARIES = {1: "BT.709", 5: "BT.601 PAL", 6: "BT.601 NTSC", 9: "BT.2020", 12: "Display P3"}
_TRANSFERS = {1: "BT.709", 6: "BT.601", 13: "sRGB", 14: "BT.2020 10-bit", 16: "PQ", 18: "HLG"}
_MATRICES = {1: "BT.709", 5: "BT.601", 6: "BT.601", 9: "BT.2020"}
_RANGES = {1: "limited", 2: "full"}  # 0 is unspecified, like code 2 of the others
# Apple's `stri` flags: has left eye, has right eye, (the views are) reversed
_STRI_LEFT, _STRI_RIGHT, _STRI_REVERSED = 0x01, 0x02, 0x08
_EYE_NAMES = {1: "left", 2: "right"}  # hero_eye values
# Packings FFmpeg names for Matroska's StereoMode, and in words
_PACKING_WORDS = {"left_right": "side by side", "top_bottom": "top-bottom", "right_left": "side by side, eyes swapped",
                  "bottom_top": "top-bottom, eyes swapped"}
_LAYOUT_WORDS = {"sbs": "side by side", "hsbs": "half side by side", "tb": "top-bottom", "htb": "half top-bottom",
                 "crosseye": "side by side, eyes swapped", "anaglyph": "red-cyan anaglyph", "lr-pair": "one eye per file",
                 "spatial": "Apple spatial"}


@dataclass
class Report:
    path: str
    kind: str  # "video" or "photo"
    container: str
    streams: list[dict[str, Any]] = field(default_factory=list)
    stereo: dict[str, Any] = field(default_factory=dict)  # only what the file states
    name_layout: str | None = None  # the layout the name's suffix stands for (sbsconvert's naming)
    apple: str = ""
    quest: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as text, one fact a line."""
        out = [f"{self.path}: {self.kind}, {self.container}"]
        for stream in self.streams:
            out.append("  " + _stream_line(stream))
        if self.stereo:
            out.append("  stereo:")
            out += [f"    {key.replace('_', ' ')}: {_text(value)}" for key, value in self.stereo.items()]
        else:
            out.append("  stereo: nothing in the file says so")
        name = (f"{LAYOUTS[self.name_layout].naming} ({_LAYOUT_WORDS.get(self.name_layout, self.name_layout)})"
                if self.name_layout else "no layout suffix")
        out += [f"  name: {name}", f"  Apple: {self.apple}", f"  Quest: {self.quest}"]
        return out


def inspect(path: Path) -> Report:
    """What the file at `path` says about its stereo. Raises SbsError (one line) when it is not a
    photo or video that can be read."""
    path = Path(path)
    if not path.is_file():
        raise SbsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise SbsError(f"{path}: the file is empty")
    with path.open("rb") as handle:
        head = handle.read(12)
    if head[4:8] == b"ftyp" and head[8:12] in ISO_BMFF_PHOTO_BRANDS:
        report = _heif_report(path, head[8:12].decode("latin-1"))
    else:
        report = _pillow_report(path) or _video_report(path)
    report.name_layout = name_layout(path)
    report.apple, report.quest = apple_verdict(report), quest_verdict(report)
    return report


def name_layout(path: Path) -> str | None:
    """The layout whose sbsconvert suffix ends the file name (_LR, _HSBS, _L...), if any."""
    stem = path.stem.lower()
    suffixes = sorted(((suffix.lower(), name) for name, layout in LAYOUTS.items() for suffix in layout.suffixes
                       if suffix), key=lambda pair: -len(pair[0]))
    return next((name for suffix, name in suffixes if stem.endswith(suffix)), None)


# --- photos -------------------------------------------------------------------------------------


def _heif_report(path: Path, brand: str) -> Report:
    import pillow_heif

    from sbsconvert.formats.heif.camera import item_camera
    from sbsconvert.formats.heif.items import item_infos, item_properties, master_images, read_meta_box, stereo_pair_ids

    try:
        meta = read_meta_box(path)
        shown = master_images(meta)
        types = {info.item_id: info.item_type.decode("latin-1") for info in item_infos(meta)}
        heif = pillow_heif.open_heif(path)
    except (OSError, ValueError, RuntimeError) as error:
        raise SbsError(f"{path}: not a readable HEIF photo ({first_line(error)})") from None
    report = Report(str(path), "photo", f"HEIF (brand {brand})")
    for index, image in enumerate(heif):
        item = shown[index] if len(shown) == len(heif) else None
        report.streams.append({"type": "image", "codec": _item_codec(types.get(item, "")) if item else "?",
                               "width": image.size[0], "height": image.size[1], "bit_depth": image.info.get("bit_depth"),
                               "primary": bool(image.info.get("primary"))})
    pair = stereo_pair_ids(meta)
    if pair is not None:
        report.stereo["heif_stereo_group"] = f"ster: items {pair[0]} (left), {pair[1]} (right)"
        try:
            left, right = (item_camera(item_properties(meta, item)) for item in pair)
        except (ValueError, struct.error) as error:
            report.stereo["camera"] = f"unreadable ({first_line(error)})"
            return report
        if left.intrinsics is not None:
            report.stereo["hfov_degrees"] = round(left.intrinsics.hfov_degrees, 3)
        if left.position_um is not None and right.position_um is not None:
            report.stereo["baseline_mm"] = abs(right.position_um[0] - left.position_um[0]) / 1000
        if left.disparity_adjustment is not None:
            report.stereo["disparity_adjustment"] = _adjustment(left.disparity_adjustment)
    return report


def _item_codec(item_type: str) -> str:
    return {"hvc1": "HEVC", "av01": "AV1", "grid": "HEVC tiles (grid)", "jpeg": "JPEG"}.get(item_type, item_type)


def _pillow_report(path: Path) -> Report | None:
    """A photo Pillow reads (JPEG, MPO, PNG, ...), or None when Pillow does not know the file."""
    from PIL import Image, UnidentifiedImageError

    from sbsconvert.formats.mpo import is_stereo_mpo

    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            for frame in range(frames):  # decoded, so that a cut-off file is not described as whole
                image.seek(frame)
                image.load()
            image.seek(0)
            report = Report(str(path), "photo", image.format or "image")
            entries = (getattr(image, "mpinfo", None) or {}).get(0xB002, []) if image.format == "MPO" else []
            report.streams.append({"type": "image", "codec": "JPEG" if image.format == "MPO" else image.format,
                                   "width": image.size[0], "height": image.size[1], "mode": image.mode,
                                   "images": frames if frames > 1 else None})
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError) as error:
        raise SbsError(f"{path}: not a readable image ({first_line(error)})") from None
    if entries:
        report.stereo["mpo_images"] = [entry["Attribute"]["MPType"] for entry in entries]
        if is_stereo_mpo(path):
            report.stereo["mpo_stereo"] = "multi-view disparity images, numbered from the left"
    return report


# --- videos -------------------------------------------------------------------------------------


def _video_report(path: Path) -> Report:
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        reason = getattr(error, "strerror", None) or first_line(error)
        raise SbsError(f"{path}: not a photo or video that can be read ({reason})") from None
    with container:
        if not container.streams:
            raise SbsError(f"{path}: holds no streams")
        report = Report(str(path), "video" if container.streams.video else "audio",
                        f"{container.format.long_name} ({container.format.name})")
        if container.duration:
            report.container += f", {float(Fraction(container.duration, av.time_base)):.2f} s"
        for stream in container.streams:
            report.streams.append(_stream_facts(container, stream))
        if container.streams.video:
            _check_whole(path, container, container.streams.video[0])
            _video_stereo(path, container, report)
    return report


def _check_whole(path: Path, container: Any, stream: Any) -> None:
    """Refuse a cut-off video: its last second of packets must reach the duration its header states,
    with at least half the frames its rate gives (a Matroska file cut short still opens, with the
    header's duration). Only packets are read."""
    import av

    from sbsconvert.video.decode import stream_duration

    duration = stream_duration(container, stream) or (Fraction(container.duration, av.time_base)
                                                       if container.duration else None)
    if not duration or not stream.time_base:
        return
    rate = stream.average_rate or stream.guessed_rate
    slack = max(Fraction(2) / rate if rate else Fraction(0), duration / 50)
    start = max(Fraction(0), duration - 1)
    end, count = Fraction(0), 0  # B-frames come before the picture they follow: the count catches them
    with contextlib.suppress(av.FFmpegError):
        container.seek(int(start / stream.time_base), stream=stream, backward=True)
        for packet in container.demux(stream):
            if packet.pts is not None:
                end = max(end, (packet.pts + (packet.duration or 0)) * stream.time_base)
                count += packet.pts * stream.time_base >= start
    if end < duration - slack or (rate and count < (duration - start) * rate / 2):
        raise SbsError(f"{path}: the video is truncated (its packets reach {float(end):.2f} s of its "
                       f"{float(duration):.2f} s)")
    container.seek(0)


def _stream_facts(container: Any, stream: Any) -> dict[str, Any]:
    from sbsconvert.video.decode import pixel_format_bits, stream_duration

    context = stream.codec_context
    facts: dict[str, Any] = {"type": stream.type, "codec": context.name if context else stream.codec.name}
    if context is not None and context.profile:
        facts["profile"] = context.profile
    if stream.type == "video":
        duration = stream_duration(container, stream)
        facts.update({"width": context.width, "height": context.height, "frames": stream.frames or None,
                      "duration_s": round(float(duration), 3) if duration else None,
                      "frame_rate": str(stream.average_rate) if stream.average_rate else None,
                      "bit_depth": pixel_format_bits(context.format), "pixel_format": context.format.name if context.format else None,
                      "colour": _colour(context)})
    elif stream.type == "audio":
        facts.update({"sample_rate": context.sample_rate, "channels": context.channels})
    return facts


def _colour(context: Any) -> str:
    """The colour description the stream states (FFmpeg's AVColor* codes, by name where common)."""
    fields = (("primaries", context.color_primaries, _PRIMARIES), ("transfer", context.color_trc, _TRANSFERS),
              ("matrix", context.colorspace, _MATRICES), ("range", context.color_range, _RANGES))
    stated = [f"{name} {names.get(code, f'code {code}')}" for name, code, names in fields if code not in (0, 2)]
    return ", ".join(stated) or "unspecified"


def _video_stereo(path: Path, container: Any, report: Report) -> None:
    import av

    from sbsconvert.formats.isobmff.boxes import read_video_sample_entry
    from sbsconvert.formats.st3d import read_st3d
    from sbsconvert.video.decode import has_two_views, hero_eye

    stream = container.streams.video[0]
    stereo = report.stereo
    mode = stream.metadata.get("stereo_mode")
    if mode and mode != "mono":
        stereo["matroska_stereo_mode"] = mode
    st3d = read_st3d(path)
    if st3d is not None:
        stereo["st3d"] = ST3D_NAMES.get(st3d, f"stereo_mode {st3d}")
    entry = read_video_sample_entry(path)
    multilayer = bool(stream.disposition & av.stream.Disposition.multilayer)
    if multilayer or (entry is not None and entry.child(b"lhvC") is not None):
        two = has_two_views(path, stream)
        stereo["mv_hevc_views"] = 2 if two else "1 (the second layer does not decode as a view)"
        layers = layer_profiles(entry)
        if layers:
            stereo["layer_profiles"] = layers
        hero = hero_eye(path)
        base = _EYE_NAMES.get(hero or 1, f"hero_eye {hero}")
        stereo["base_view"] = f"{base} eye" + ("" if hero else " (no hero box: the left, by default)")
    if entry is not None:
        apple_boxes(entry, stereo)
    sei = (config_sei(entry) if entry is not None else []) + _first_packet_sei(container, stream)
    if sei:
        stereo["sei"] = sei


def apple_boxes(entry: Any, stereo: dict[str, Any]) -> None:
    """Apple's stereo video boxes in the sample entry: vexu (eye views, hero, baseline, disparity
    adjustment, projection) and hfov; each reported only when present."""
    vexu = entry.child(b"vexu")
    if vexu is not None:
        stri = vexu.find("eyes/stri")
        if stri is not None and len(stri.payload) > 4:
            flags = stri.payload[4]
            eyes = [name for bit, name in ((_STRI_LEFT, "left"), (_STRI_RIGHT, "right")) if flags & bit]
            stereo["vexu_eye_views"] = " and ".join(eyes) + (" (reversed)" if flags & _STRI_REVERSED else "") or "none"
        blin = vexu.find("eyes/cams/blin")
        if blin is not None and len(blin.payload) >= 8:
            stereo["baseline_mm"] = struct.unpack_from(">I", blin.payload, 4)[0] / 1000
        prji = vexu.find("proj/prji")
        if prji is not None and len(prji.payload) >= 8:
            stereo["projection"] = prji.payload[4:8].decode("latin-1")
        dadj = next(iter(vexu.find_all("dadj")), None)
        if dadj is not None and len(dadj.payload) >= 8:
            stereo["disparity_adjustment"] = _adjustment(struct.unpack_from(">i", dadj.payload, 4)[0])
    hfov = entry.child(b"hfov")
    if hfov is not None and len(hfov.payload) >= 4:
        stereo["hfov_degrees"] = struct.unpack_from(">I", hfov.payload)[0] / 1000


def layer_profiles(entry: Any) -> list[str]:
    """The HEVC profile of each layer: the base layer's from hvcC, a layer above's from the VPS
    (its profile_tier_level in the output layer set of all layers), to which a multi-layer SPS
    (as Apple's) leaves it; an SPS of the layer naming another profile is quoted beside it."""
    from sbsconvert.formats.hevc.bits import BitstreamError
    from sbsconvert.formats.hevc.nal import SPS, VPS
    from sbsconvert.formats.hevc.params import parse_vps

    hvcc = entry.child(b"hvcC") if entry is not None else None
    if hvcc is None or len(hvcc.payload) < 2:
        return []
    units = [unit for _, unit in _config_record_units(entry)]
    vps = next((unit for unit in units if unit.type == VPS), None)
    layer_ptls, missing = {}, "no VPS"
    if vps is not None:
        try:
            layer_ptls = parse_vps(vps.rbsp).layer_ptls
        except BitstreamError as error:
            missing = f"unreadable: {first_line(error)}"
    names = {layer: _profile_name(ptl) for layer, ptl in layer_ptls.items() if layer}
    for sps in (unit for unit in units if unit.type == SPS and unit.layer_id):
        own = _sps_ptl(sps.rbsp)
        if sps.layer_id not in names:
            names[sps.layer_id] = _profile_name(own) if own else f"stated in the VPS ({missing})"
        elif own is not None and own.profile_idc != layer_ptls[sps.layer_id].profile_idc:
            names[sps.layer_id] += f" (its SPS says {_profile_name(own)})"
    base = HEVC_PROFILES.get(hvcc.payload[1] & 0x1F, f"profile {hvcc.payload[1] & 0x1F}")
    return [f"layer 0: {base}"] + [f"layer {layer}: {name}" for layer, name in sorted(names.items())]


def _profile_name(ptl: Any) -> str:
    """A profile by name; Multiview and Scalable Main with the bit depth their constraint flags
    keep to (Multiview Main 10 is Multiview Main without general_max_8bit_constraint_flag)."""
    from sbsconvert.formats.hevc.params import MULTIVIEW_MAIN_PROFILE

    name = HEVC_PROFILES.get(ptl.profile_idc, f"profile {ptl.profile_idc}")
    if ptl.profile_idc in (MULTIVIEW_MAIN_PROFILE, _SCALABLE_MAIN):
        depth = ptl.max_bit_depth
        name += "" if depth == 8 else f" {depth}" if depth else " (no bit depth constraint flag set)"
    return name


def _sps_ptl(rbsp: bytes) -> Any:
    """The profile_tier_level of an SPS; None for a multi-layer SPS, which has none."""
    from sbsconvert.formats.hevc.params import MULTILAYER_SPS, ProfileTierLevel

    if len(rbsp) < 13 or (rbsp[0] >> 1) & 7 == MULTILAYER_SPS:  # sps_ext_or_max_sub_layers_minus1
        return None
    return ProfileTierLevel(rbsp[1:12], rbsp[12])


def _config_record_units(entry: Any) -> list[tuple[str, Any]]:
    """The NAL units in the arrays of the sample entry's decoder configuration records, each with
    its record's name (hvcC, lhvC)."""
    from sbsconvert.formats.hevc.nal import HVCC_ARRAYS, LHVC_ARRAYS, config_record_units

    units = []
    for name, arrays_start in ((b"hvcC", HVCC_ARRAYS), (b"lhvC", LHVC_ARRAYS)):
        record = entry.child(name)
        if record is not None:
            units += [(name.decode(), unit)
                      for unit in _readable_units(config_record_units(record.payload, arrays_start))]
    return units


def config_sei(entry: Any) -> list[str]:
    """The SEI messages in the decoder configuration records (where Apple's encoder names the
    left and right views), by name and record; the views a 3D reference displays info names."""
    from sbsconvert.formats.hevc.nal import PREFIX_SEI, SUFFIX_SEI
    from sbsconvert.formats.hevc.sei import THREE_D_REFERENCE_DISPLAYS_INFO, parse_reference_displays, sei_payload_types

    found = []
    for name, unit in _config_record_units(entry):
        if unit.type not in (PREFIX_SEI, SUFFIX_SEI):
            continue
        kinds: list[int] = []
        with contextlib.suppress(IndexError):  # a cut-off SEI NAL unit: none named
            kinds = sei_payload_types(unit.rbsp)
        for kind in kinds:
            text = f"{SEI_NAMES.get(kind, f'payload type {kind}')} ({name})"
            views = parse_reference_displays(unit) if kind == THREE_D_REFERENCE_DISPLAYS_INFO else None
            if views:
                text += f": left view {views.left_view_id}, right view {views.right_view_id}"
            found.append(text)
    return found


def _readable_units(units: Iterator[Any]) -> list[Any]:
    """The NAL units read before a cut-off or unreadable one (a damaged file shows what it has)."""
    from sbsconvert.formats.hevc.bits import BitstreamError

    read = []
    with contextlib.suppress(IndexError, struct.error, BitstreamError):
        for unit in units:
            read.append(unit)
    return read


def _first_packet_sei(container: Any, stream: Any) -> list[str]:
    """The SEI messages in the first packet of an HEVC stream in MP4/MOV (NAL units with 4-byte
    lengths), by name; [] for other streams."""
    import av

    from sbsconvert.formats.hevc.nal import PREFIX_SEI, length_prefixed_units
    from sbsconvert.formats.hevc.sei import sei_payload_types

    if stream.codec_context.name != "hevc" or "mp4" not in container.format.name:
        return []
    found: list[str] = []
    with contextlib.suppress(av.FFmpegError, StopIteration, IndexError):
        packet = bytes(next(packet for packet in container.demux(stream) if packet.size))
        for unit in _readable_units(length_prefixed_units(packet)):
            if unit.type == PREFIX_SEI:
                found += [f"{SEI_NAMES.get(kind, f'payload type {kind}')} (layer {unit.layer_id})"
                          for kind in sei_payload_types(unit.rbsp)]
    return found


# --- verdicts -----------------------------------------------------------------------------------


def apple_verdict(report: Report) -> str:
    """Whether Apple's players (Vision Pro, iPhone Photos) take the file for spatial media, and why."""
    stereo = report.stereo
    if report.kind == "photo":
        if "heif_stereo_group" not in stereo:
            return "spatial photo: no, because it is not a HEIC with a stereo pair group"
        if "baseline_mm" in stereo and "hfov_degrees" in stereo:
            return "spatial photo: yes, because its ster group pairs a left and a right image with camera metadata"
        return "spatial photo: stereo, not spatial, because its pair has no camera metadata (cmin/cmex)"
    if stereo.get("mv_hevc_views") != 2:
        return "spatial video: no, because it is not MV-HEVC with two views"
    if "vexu_eye_views" not in stereo:
        return "spatial video: no, because it has two MV-HEVC views but no Apple vexu box naming the eyes"
    if "mov,mp4" not in report.container:
        return "spatial video: no, because only QuickTime/MP4 files carry it"
    return "spatial video: yes, because it has two MV-HEVC views and Apple's vexu box names them"


def quest_verdict(report: Report) -> str:
    """How a Quest player (Meta's own, Skybox, DeoVR...) shows it: from the stereo tags it reads
    (st3d, StereoMode), else from the name's layout suffix."""
    stereo = report.stereo
    if stereo.get("st3d") in _ST3D_WORDS:
        return f"plays as {_ST3D_WORDS[stereo['st3d']]} because st3d says {stereo['st3d']}"
    if "matroska_stereo_mode" in stereo:
        mode = stereo["matroska_stereo_mode"]
        return f"plays as {_PACKING_WORDS.get(mode, mode)} because Matroska StereoMode says {mode}"
    layout = report.name_layout
    if layout in ("sbs", "hsbs", "tb", "htb", "crosseye"):
        return f"plays as {_LAYOUT_WORDS[layout]} because the name ends {LAYOUTS[layout].suffixes[0]}"
    if "mv_hevc_views" in stereo:
        return (f"shows the base view ({stereo['base_view']}) in 2D unless the player decodes MV-HEVC's second "
                "view (convert with -f sbs for 3D)")
    if "mpo_stereo" in stereo:
        return "stereo photo viewers that read MPO show it in 3D; others show its first (left) image"
    if "heif_stereo_group" in stereo:
        return "shows the primary (left) image in 2D (convert with -f sbs for 3D)"
    if layout == "anaglyph":
        return "2D picture of a red-cyan anaglyph (3D with paper glasses only)"
    return "plays in 2D: no stereo tag, and the name ends with no layout suffix"


# --- text ---------------------------------------------------------------------------------------


def _adjustment(value: int) -> str:
    return f"{value:+d} (ten-thousandths of the width: {value / 100:+.2f} %)"


def _text(value: Any) -> str:
    return ", ".join(str(item) for item in value) if isinstance(value, list) else str(value)


def _stream_line(stream: dict[str, Any]) -> str:
    facts = [stream["type"], stream["codec"]]
    if stream.get("profile"):
        facts.append(stream["profile"])
    if stream.get("width"):
        facts.append(f"{stream['width']}x{stream['height']}")
    for key, unit in (("frames", "frames"), ("duration_s", "s"), ("frame_rate", "fps"), ("bit_depth", "bit"),
                      ("pixel_format", ""), ("mode", ""), ("images", "images"), ("sample_rate", "Hz"), ("channels", "channels")):
        if stream.get(key) is not None:
            facts.append(f"{stream[key]} {unit}".strip())
    if stream.get("colour"):
        facts.append(f"colour: {stream['colour']}")
    if stream.get("primary"):
        facts.append("primary")
    return ", ".join(str(fact) for fact in facts)
