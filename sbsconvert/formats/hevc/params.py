"""HEVC parameter sets (H.265 clauses 7.3.2, F.7.3.2.1 and F.7.3.2.2): the SPS and PPS fields that
slice headers depend on, a layer-1 SPS in the multi-layer form, a layer's own PPS ids, and the
VPS of a two-view (multiview, MV-HEVC) stream built from a single-layer one, and read back.

Only what the slice-header rewrite and the VPS extension need is parsed; the SPS stops before
its VUI, the VPS extension after its picture buffer sizes. Features a plain libx265 Main/Main 10
stream does not use (several temporal sub-layers, HRD parameters, PPS range/SCC extensions) are
refused with BitstreamError.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sbsconvert.formats.hevc.bits import BitCopier, BitReader, BitstreamError, BitWriter

MULTIVIEW_MAIN_PROFILE = 6  # general_profile_idc of Multiview Main (Annex G)


def format_constraint_flags(bit_depth: int, chroma_format_idc: int) -> int:
    """The 43 bits after general_frame_only_constraint_flag in a multiview layer's PTL: the
    general_max_12bit/10bit/8bit, max_422chroma, max_420chroma and max_monochrome constraint
    flags set where the format keeps to them (Apple's encoder sets the first five for 8-bit 4:2:0),
    the intra, one-picture and lower-bit-rate flags and the reserved bits 0. Readers name the
    profile from them (MediaInfo reads all zero as "Multiview Main 16"). H.265's Multiview Main
    is 8-bit; a 10-bit layer clears max_8bit, as a Scalable Main 10 layer does beside Scalable Main
    (Annex H), for the Multiview Main 10 of 3GPP TS 26.265."""
    flags = (bit_depth <= 12, bit_depth <= 10, bit_depth <= 8, chroma_format_idc <= 2, chroma_format_idc <= 1,
             chroma_format_idc == 0)
    return sum(int(flag) << (42 - index) for index, flag in enumerate(flags))
_MULTIVIEW_SCALABILITY = 1  # scalability_mask_flag index of multiview (Table F.1)
MULTILAYER_SPS = 7  # sps_ext_or_max_sub_layers_minus1 of a multi-layer SPS (MultiLayerExtSpsFlag)
# sps_range_extension_flag and sps_multilayer_extension_flag among the 8 bits after sps_extension_present_flag
_RANGE_EXTENSION, _MULTILAYER_EXTENSION = 0x80, 0x40


@dataclass
class ShortTermRps:
    """A short-term reference picture set: POC deltas before (S0) and after (S1) the current
    picture, each with its used_by_curr_pic flag."""

    negative: list[tuple[int, bool]] = field(default_factory=list)
    positive: list[tuple[int, bool]] = field(default_factory=list)

    @property
    def num_delta_pocs(self) -> int:
        return len(self.negative) + len(self.positive)

    @property
    def used_by_current(self) -> int:
        return sum(used for _, used in self.negative + self.positive)


@dataclass
class ProfileTierLevel:
    general: bytes  # the 88 bits from general_profile_space to general_inbld/reserved flag, as 11 bytes
    level_idc: int

    @property
    def profile_idc(self) -> int:
        return self.general[0] & 0x1F if self.general else 0

    @property
    def max_bit_depth(self) -> int | None:
        """The bit depth general_max_8bit/10bit/12bit_constraint_flag keep the layer to (profiles
        from Range Extensions on carry them; Main is 8-bit, Main 10 10-bit); None: not stated."""
        if self.profile_idc in (1, 3):
            return 8
        if self.profile_idc == 2:
            return 10
        flags = (int.from_bytes(self.general, "big") >> 41) & 0b111 if self.profile_idc >= 4 else 0  # 12, 10, 8 bit
        return next((depth for bit, depth in ((0b001, 8), (0b010, 10), (0b100, 12)) if flags & bit), None)


@dataclass
class RepFormat:
    """A VPS's rep_format() (F.7.3.2.1.2): the picture format a multi-layer SPS takes from it."""

    width: int
    height: int
    chroma_format_idc: int
    separate_colour_plane: bool
    bit_depth_luma: int
    bit_depth_chroma: int
    conformance_window: tuple[int, int, int, int] | None


@dataclass
class Vps:
    """What a VPS says of its layers: each layer's profile (in the output layer set of them all)
    and, with an extension, the view ids, the reference layer, the picture format and the picture
    buffer sizes its layers' multi-layer SPSs take."""

    vps_id: int
    ptl: ProfileTierLevel  # of the base layer
    layer_ids: list[int]  # nuh_layer_id of each layer
    layer_ptls: dict[int, ProfileTierLevel]  # nuh_layer_id -> profile, tier and level
    view_ids: list[int] = field(default_factory=list)  # of each layer
    layer1_depends_on_layer0: bool = False  # direct_dependency_flag[1][0]
    default_ref_layers_active: bool = False
    rep_format: RepFormat | None = None
    max_dec_pic_buffering_minus1: dict[int, int] = field(default_factory=dict)  # nuh_layer_id -> value
    max_num_reorder_pics: int = 0
    max_latency_increase_plus1: int = 0


@dataclass
class Sps:
    vps_id: int
    max_sub_layers_minus1: int
    ptl: ProfileTierLevel
    sps_id: int
    chroma_format_idc: int
    separate_colour_plane: bool
    width: int
    height: int
    conformance_window: tuple[int, int, int, int] | None  # left, right, top, bottom in chroma units
    bit_depth_luma: int
    bit_depth_chroma: int
    log2_max_poc_lsb: int
    max_dec_pic_buffering_minus1: int  # of the highest sub-layer
    max_num_reorder_pics: int
    max_latency_increase_plus1: int
    log2_min_cb_size: int
    log2_ctb_size: int
    sample_adaptive_offset: bool
    short_term_rps: list[ShortTermRps]
    long_term_refs_present: bool
    long_term_used_by_curr: list[bool]  # used_by_curr_pic_lt_sps_flag per lt_ref_pic_poc_lsb_sps
    temporal_mvp: bool

    @property
    def chroma_array_type(self) -> int:
        return 0 if self.separate_colour_plane else self.chroma_format_idc

    @property
    def ctb_count(self) -> int:
        size = 1 << self.log2_ctb_size
        return -(-self.width // size) * -(-self.height // size)


@dataclass
class Pps:
    pps_id: int
    sps_id: int
    dependent_slice_segments: bool
    output_flag_present: bool
    num_extra_slice_header_bits: int
    cabac_init_present: bool
    num_ref_idx_default_active: tuple[int, int]  # l0, l1 (minus1 + 1)
    slice_chroma_qp_offsets_present: bool
    weighted_pred: bool
    weighted_bipred: bool
    tiles: bool
    entropy_coding_sync: bool
    loop_filter_across_slices: bool
    deblocking_override_enabled: bool
    deblocking_disabled: bool
    lists_modification_present: bool
    slice_header_extension_present: bool


def _profile_tier_level(reader: BitReader, profile_present: bool, max_sub_layers_minus1: int) -> ProfileTierLevel:
    general = reader.u(88).to_bytes(11, "big") if profile_present else b""
    level = reader.u(8)
    if max_sub_layers_minus1:
        raise BitstreamError("streams with temporal sub-layers are not supported")
    return ProfileTierLevel(general, level)


def _scaling_list_data(reader: BitReader | BitCopier) -> None:
    for size_id in range(4):
        for _ in range(0, 6, 3 if size_id == 3 else 1):
            if not reader.flag():  # scaling_list_pred_mode_flag
                reader.ue()  # scaling_list_pred_matrix_id_delta
                continue
            if size_id > 1:
                reader.se()  # scaling_list_dc_coef_minus8
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                reader.se()  # scaling_list_delta_coef


def read_short_term_rps(reader: BitReader | BitCopier, index: int, count: int,
                        previous: list[ShortTermRps]) -> ShortTermRps:
    """st_ref_pic_set(index) (7.3.7, derivation 7.4.8) of an SPS with `count` sets, of which
    `previous` are read already; index == count is the set of a slice header. A BitCopier reads
    and re-emits it."""
    if index and reader.flag():  # inter_ref_pic_set_prediction_flag
        delta_idx = reader.ue() + 1 if index == count else 1
        if delta_idx > index:
            raise BitstreamError("inter-RPS prediction from a set that does not exist")
        sign = reader.flag()
        delta_rps = (1 - 2 * sign) * (reader.ue() + 1)
        reference = previous[index - delta_idx]
        used, use_delta = [], []
        for _ in range(reference.num_delta_pocs + 1):
            used.append(reader.flag())
            use_delta.append(True if used[-1] else reader.flag())
        return _predicted_rps(reference, delta_rps, used, use_delta)
    negatives, positives = reader.ue(), reader.ue()
    rps, poc = ShortTermRps(), 0
    for _ in range(negatives):
        poc -= reader.ue() + 1
        rps.negative.append((poc, reader.flag()))
    poc = 0
    for _ in range(positives):
        poc += reader.ue() + 1
        rps.positive.append((poc, reader.flag()))
    return rps


def _predicted_rps(reference: ShortTermRps, delta_rps: int, used: list[bool], use_delta: list[bool]) -> ShortTermRps:
    """Equations 7-61 and 7-62: a set predicted from `reference` shifted by delta_rps."""
    neg_count = len(reference.negative)
    last = reference.num_delta_pocs  # the entry standing for the reference picture itself
    rps = ShortTermRps()
    for j in reversed(range(len(reference.positive))):
        poc = reference.positive[j][0] + delta_rps
        if poc < 0 and use_delta[neg_count + j]:
            rps.negative.append((poc, used[neg_count + j]))
    if delta_rps < 0 and use_delta[last]:
        rps.negative.append((delta_rps, used[last]))
    for j in range(neg_count):
        poc = reference.negative[j][0] + delta_rps
        if poc < 0 and use_delta[j]:
            rps.negative.append((poc, used[j]))
    for j in reversed(range(neg_count)):
        poc = reference.negative[j][0] + delta_rps
        if poc > 0 and use_delta[j]:
            rps.positive.append((poc, used[j]))
    if delta_rps > 0 and use_delta[last]:
        rps.positive.append((delta_rps, used[last]))
    for j in range(len(reference.positive)):
        poc = reference.positive[j][0] + delta_rps
        if poc > 0 and use_delta[neg_count + j]:
            rps.positive.append((poc, used[neg_count + j]))
    return rps


def parse_sps(rbsp: bytes, layer_id: int = 0, vps: Vps | None = None) -> Sps:
    """An SPS, read up to its VUI: a single-layer one, or the multi-layer SPS of layer `layer_id`
    above 0 (F.7.3.2.2.1: sps_ext_or_max_sub_layers_minus1 7), whose profile, picture format and
    buffer sizes are those its VPS (`vps`, read by parse_vps) gives the layer."""
    reader = BitReader(rbsp)
    vps_id = reader.u(4)
    max_sub_layers_minus1 = reader.u(3)
    if layer_id and max_sub_layers_minus1 == MULTILAYER_SPS:
        return _parse_multilayer_sps(reader, vps_id, layer_id, vps)
    reader.u(1)  # sps_temporal_id_nesting_flag
    ptl = _profile_tier_level(reader, True, max_sub_layers_minus1)
    sps_id = reader.ue()
    chroma = reader.ue()
    separate = reader.flag() if chroma == 3 else False
    width, height = reader.ue(), reader.ue()
    window = (reader.ue(), reader.ue(), reader.ue(), reader.ue()) if reader.flag() else None
    depth_luma, depth_chroma = reader.ue() + 8, reader.ue() + 8
    log2_max_poc_lsb = reader.ue() + 4
    ordering_all = reader.flag()
    for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        dpb, reorder, latency = reader.ue(), reader.ue(), reader.ue()
    log2_min_cb, log2_ctb = _block_sizes(reader)
    if reader.flag() and reader.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _scaling_list_data(reader)
    return Sps(vps_id, max_sub_layers_minus1, ptl, sps_id, chroma, separate, width, height, window, depth_luma,
               depth_chroma, log2_max_poc_lsb, dpb, reorder, latency, log2_min_cb, log2_ctb,
               *_coding_tools(reader, log2_max_poc_lsb))


def _parse_multilayer_sps(reader: BitReader, vps_id: int, layer_id: int, vps: Vps | None) -> Sps:
    if vps is None or vps.rep_format is None or layer_id not in vps.layer_ptls:
        raise BitstreamError(f"a multi-layer SPS of layer {layer_id} without a VPS extension describing the layer")
    sps_id = reader.ue()
    if reader.flag() and reader.u(8):  # update_rep_format_flag, sps_rep_format_idx
        raise BitstreamError("SPSs with another rep_format than the VPS's first are not supported")
    rep = vps.rep_format
    log2_max_poc_lsb = reader.ue() + 4
    log2_min_cb, log2_ctb = _block_sizes(reader)
    if reader.flag():  # scaling_list_enabled_flag
        if reader.flag():  # sps_infer_scaling_list_flag
            reader.u(6)  # sps_scaling_list_ref_layer_id
        elif reader.flag():  # sps_scaling_list_data_present_flag
            _scaling_list_data(reader)
    return Sps(vps_id, 0, vps.layer_ptls[layer_id], sps_id, rep.chroma_format_idc, rep.separate_colour_plane,
               rep.width, rep.height, rep.conformance_window, rep.bit_depth_luma, rep.bit_depth_chroma,
               log2_max_poc_lsb, vps.max_dec_pic_buffering_minus1[layer_id], vps.max_num_reorder_pics,
               vps.max_latency_increase_plus1, log2_min_cb, log2_ctb, *_coding_tools(reader, log2_max_poc_lsb))


def _block_sizes(reader: BitReader | BitCopier) -> tuple[int, int]:
    """log2 of the smallest coding block and of the CTB; the transform sizes and depths skipped."""
    log2_min_cb = reader.ue() + 3
    log2_ctb = log2_min_cb + reader.ue()
    for _ in range(4):
        reader.ue()  # transform block sizes and hierarchy depths
    return log2_min_cb, log2_ctb


def _coding_tools(reader: BitReader | BitCopier, log2_max_poc_lsb: int) \
        -> tuple[bool, list[ShortTermRps], bool, list[bool], bool]:
    """From amp_enabled_flag to sps_temporal_mvp_enabled_flag: SAO, the short-term reference
    picture sets, the long-term reference fields and temporal motion vector prediction."""
    reader.u(1)  # amp_enabled_flag
    sao = reader.flag()
    if reader.flag():  # pcm_enabled_flag
        reader.u(8)
        reader.ue()
        reader.ue()
        reader.u(1)
    sets: list[ShortTermRps] = []
    count = reader.ue()
    for index in range(count):
        sets.append(read_short_term_rps(reader, index, count, sets))
    long_term = reader.flag()
    lt_used = []
    if long_term:
        for _ in range(reader.ue()):
            reader.u(log2_max_poc_lsb)
            lt_used.append(reader.flag())
    return sao, sets, long_term, lt_used, reader.flag()


def _vui_parameters(reader: BitReader | BitCopier) -> None:
    """vui_parameters() (E.2.1), read or copied; one with HRD parameters is refused."""
    if reader.flag() and reader.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc EXTENDED_SAR
        reader.u(32)  # sar_width, sar_height
    if reader.flag():  # overscan_info_present_flag
        reader.u(1)
    if reader.flag():  # video_signal_type_present_flag
        reader.u(4)  # video_format, video_full_range_flag
        if reader.flag():  # colour_description_present_flag
            reader.u(24)
    if reader.flag():  # chroma_loc_info_present_flag
        reader.ue()
        reader.ue()
    reader.u(3)  # neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
    if reader.flag():  # default_display_window_flag
        for _ in range(4):
            reader.ue()
    if reader.flag():  # vui_timing_info_present_flag
        reader.u(32)
        reader.u(32)
        if reader.flag():  # vui_poc_proportional_to_timing_flag
            reader.ue()
        if reader.flag():
            raise BitstreamError("HRD parameters in the VUI are not supported")
    if reader.flag():  # bitstream_restriction_flag
        reader.u(3)
        for _ in range(5):
            reader.ue()


def multilayer_sps(rbsp: bytes, sps_id: int) -> bytes:
    """A single-layer SPS rewritten as the multi-layer SPS of a layer above 0, as Apple's encoder
    writes layer 1's (F.7.3.2.2.1, sps_ext_or_max_sub_layers_minus1 7): no profile_tier_level,
    picture format and buffer sizes left to the VPS (multiview_vps writes them from the base
    layer's SPS, which must agree), id `sps_id` (ids are shared by all layers), scaling lists not
    inferred from another layer, and the multi-layer extension (inter_view_mv_vert_constraint_flag
    0). Every coding tool, reference picture set and the VUI are kept, so slices decode as before."""
    copier = BitCopier(BitReader(rbsp), BitWriter())
    reader, writer = copier.reader, copier.writer
    copier.u(4)  # sps_video_parameter_set_id
    if reader.u(3):
        raise BitstreamError("streams with temporal sub-layers are not supported")
    writer.u(3, MULTILAYER_SPS)  # sps_ext_or_max_sub_layers_minus1
    reader.u(1 + 88 + 8)  # sps_temporal_id_nesting_flag, profile_tier_level: the VPS's
    reader.ue()
    writer.ue(sps_id)
    writer.flag(0)  # update_rep_format_flag: the VPS's rep_format
    if reader.ue() == 3:  # chroma_format_idc
        reader.u(1)
    reader.ue()
    reader.ue()  # pic_width/height_in_luma_samples
    if reader.flag():  # conformance_window_flag
        for _ in range(4):
            reader.ue()
    reader.ue()
    reader.ue()  # bit depths
    log2_max_poc_lsb = copier.ue() + 4
    reader.u(1)  # sps_sub_layer_ordering_info_present_flag
    for _ in range(3):
        reader.ue()  # buffering, reordering and latency: the VPS's dpb_size
    _block_sizes(copier)
    if copier.flag():  # scaling_list_enabled_flag
        writer.flag(0)  # sps_infer_scaling_list_flag
        if copier.flag():  # sps_scaling_list_data_present_flag
            _scaling_list_data(copier)
    _coding_tools(copier, log2_max_poc_lsb)
    copier.u(1)  # strong_intra_smoothing_enabled_flag
    if copier.flag():  # vui_parameters_present_flag
        _vui_parameters(copier)
    extensions = reader.u(8) if reader.flag() else 0  # sps_extension_present_flag, then the extension flags
    if extensions & ~_RANGE_EXTENSION:
        raise BitstreamError("SPS extensions other than the range extension are not supported")
    writer.flag(1)
    writer.u(8, extensions | _MULTILAYER_EXTENSION)
    if extensions & _RANGE_EXTENSION:
        copier.u(9)  # sps_range_extension()
    writer.flag(0)  # sps_multilayer_extension(): inter_view_mv_vert_constraint_flag
    if reader.position != reader.payload_end():
        raise BitstreamError("the SPS holds data after its extensions")
    writer.trailing_bits()
    return writer.to_bytes()


def parse_pps(rbsp: bytes) -> Pps:
    reader = BitReader(rbsp)
    pps_id, sps_id = reader.ue(), reader.ue()
    dependent, output_flag, extra_bits = reader.flag(), reader.flag(), reader.u(3)
    reader.u(1)  # sign_data_hiding_enabled_flag
    cabac_init = reader.flag()
    defaults = (reader.ue() + 1, reader.ue() + 1)
    reader.se()  # init_qp_minus26
    reader.u(2)  # constrained_intra_pred_flag, transform_skip_enabled_flag
    if reader.flag():  # cu_qp_delta_enabled_flag
        reader.ue()
    reader.se()
    reader.se()  # pps_cb_qp_offset, pps_cr_qp_offset
    chroma_offsets = reader.flag()
    weighted, bipred = reader.flag(), reader.flag()
    reader.u(1)  # transquant_bypass_enabled_flag
    tiles, sync = reader.flag(), reader.flag()
    if tiles:
        columns, rows = reader.ue(), reader.ue()
        if not reader.flag():  # uniform_spacing_flag
            for _ in range(columns + rows):
                reader.ue()
        reader.u(1)  # loop_filter_across_tiles_enabled_flag
    across_slices = reader.flag()
    override = disabled = False
    if reader.flag():  # deblocking_filter_control_present_flag
        override, disabled = reader.flag(), reader.flag()
        if not disabled:
            reader.se()
            reader.se()
    if reader.flag():  # pps_scaling_list_data_present_flag
        _scaling_list_data(reader)
    lists_modification = reader.flag()
    reader.ue()  # log2_parallel_merge_level_minus2
    extension_present = reader.flag()
    if reader.flag() and reader.u(8):  # pps_extension_present_flag, then range/multilayer/3d/scc/4bits
        raise BitstreamError("PPS extensions are not supported")
    return Pps(pps_id, sps_id, dependent, output_flag, extra_bits, cabac_init, defaults, chroma_offsets, weighted,
               bipred, tiles, sync, across_slices, override, disabled, lists_modification, extension_present)


def renumber_pps(rbsp: bytes, pps_id: int, sps_id: int) -> bytes:
    """The PPS with new pps_pic_parameter_set_id and pps_seq_parameter_set_id."""
    copier = BitCopier(BitReader(rbsp), BitWriter())
    copier.reader.ue()
    copier.reader.ue()
    copier.writer.ue(pps_id)
    copier.writer.ue(sps_id)
    copier.rest()
    return copier.writer.to_bytes()


def multiview_vps(base_vps: bytes, sps: Sps, view_ids: tuple[int, int] = (0, 1), *, dependent: bool = True) -> bytes:
    """The base layer's VPS extended for two views, layer 1 being view view_ids[1]. With
    `dependent`, layer 1 declares layer 0 as its reference layer, as Apple's encoder does (each
    layer-1 slice then switches inter-layer prediction off); else the layers are independent
    (no reference layer: a simulcast, as the conformance stream MVHEVCS_C).

    Follows F.7.3.2.1.1 within the assumptions FFmpeg's MV-HEVC decoder accepts: 2 layers, 2 layer
    sets, multiview scalability only, no extra output layer sets, one rep_format (from `sps`) with
    chroma format and bit depth present, one dependency type for all layers."""
    copier = BitCopier(BitReader(base_vps), BitWriter())
    writer = copier.writer
    copier.u(4)  # vps_video_parameter_set_id
    if not copier.flag() or not copier.flag():  # vps_base_layer_internal_flag, vps_base_layer_available_flag
        raise BitstreamError("the base layer of the VPS is not internal")
    if copier.reader.u(6) != 0:
        raise BitstreamError("the VPS already describes several layers")
    writer.u(6, 1)  # vps_max_layers_minus1
    max_sub_layers_minus1 = copier.u(3)
    if max_sub_layers_minus1:
        raise BitstreamError("streams with temporal sub-layers are not supported")
    copier.u(1)  # vps_temporal_id_nesting_flag
    copier.u(16)  # vps_reserved_0xffff_16bits
    copier.u(88)
    base_level = copier.u(8)
    ordering_all = copier.flag()
    for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        copier.ue()
        copier.ue()
        copier.ue()
    if copier.reader.u(6) != 0 or copier.reader.ue() != 0:  # vps_max_layer_id, vps_num_layer_sets_minus1
        raise BitstreamError("the VPS already has layer sets")
    writer.u(6, 1)  # vps_max_layer_id
    writer.ue(1)  # vps_num_layer_sets_minus1: {layer 0}, {layers 0, 1}
    writer.u(2, 0b11)  # layer_id_included_flag[1][0..1]
    if copier.flag():  # vps_timing_info_present_flag
        copier.u(32)
        copier.u(32)
        if copier.flag():  # vps_poc_proportional_to_timing_flag
            copier.ue()
        if copier.ue():  # vps_num_hrd_parameters
            raise BitstreamError("VPS HRD parameters are not supported")
    if copier.reader.flag():
        raise BitstreamError("the VPS has an extension already")
    writer.flag(1)  # vps_extension_flag
    writer.align_with(1)  # vps_extension_alignment_bit_equal_to_one
    _write_vps_extension(writer, sps, base_level, view_ids, dependent)
    writer.flag(0)  # vps_extension2_flag
    writer.trailing_bits()
    return writer.to_bytes()


def parse_vps(rbsp: bytes) -> Vps:
    """A VPS (7.3.2.1) and its extension (F.7.3.2.1.1) up to dpb_size(), within what FFmpeg's
    MV-HEVC decoder accepts: at most two layers, the base one internal, output layer sets {0} and
    {0, 1} (a layer set each, no additional ones), one rep_format."""
    reader = BitReader(rbsp)
    vps_id = reader.u(4)
    base_internal = reader.flag()
    reader.u(1)  # vps_base_layer_available_flag
    max_layers_minus1 = reader.u(6)
    if reader.u(3):
        raise BitstreamError("streams with temporal sub-layers are not supported")
    reader.u(1 + 16)  # vps_temporal_id_nesting_flag, vps_reserved_0xffff_16bits
    ptl = _profile_tier_level(reader, True, 0)
    reader.u(1)  # vps_sub_layer_ordering_info_present_flag
    for _ in range(3):
        reader.ue()
    max_layer_id, layer_sets_minus1 = reader.u(6), reader.ue()
    layer_sets = [[0]] + [[layer for layer in range(max_layer_id + 1) if reader.flag()]  # layer_id_included_flag
                          for _ in range(layer_sets_minus1)]
    if reader.flag():  # vps_timing_info_present_flag
        reader.u(64)
        if reader.flag():  # vps_poc_proportional_to_timing_flag
            reader.ue()
        if reader.ue():
            raise BitstreamError("VPS HRD parameters are not supported")
    vps = Vps(vps_id, ptl, [0], {0: ptl})
    if not reader.flag() or not max_layers_minus1:  # vps_extension_flag
        return vps
    if max_layers_minus1 > 1 or not base_internal:
        raise BitstreamError("only VPSs of two layers, the base one internal, are supported")
    while not reader.byte_aligned():
        reader.u(1)  # vps_extension_alignment_bit_equal_to_one
    _read_vps_extension(reader, vps, layer_sets)
    return vps


def _read_vps_extension(reader: BitReader, vps: Vps, layer_sets: list[list[int]]) -> None:
    """vps_extension() of two layers, the base one internal: what _write_vps_extension writes
    and Apple's encoder's (nuh_layer_id and a wider dimension id given, all layers active)."""
    ptls = [vps.ptl, ProfileTierLevel(vps.ptl.general, reader.u(8))]  # PTL 1: the base's profile, its own level
    splitting = reader.flag()
    mask = reader.u(16)
    lengths = [reader.u(3) + 1 for _ in range(mask.bit_count() - splitting)]
    if splitting:
        lengths.append(6 - sum(lengths))
    layer_id = reader.u(6) if reader.flag() else 1  # vps_nuh_layer_id_present_flag, layer_id_in_nuh[1]
    vps.layer_ids.append(layer_id)
    if splitting:  # the dimension ids are bit fields of nuh_layer_id, the first in the low bits
        starts = itertools.accumulate(lengths, initial=0)
        dimensions = [(layer_id >> start) & ((1 << length) - 1) for start, length in zip(starts, lengths)]
    else:
        dimensions = [reader.u(length) for length in lengths]
    multiview = mask >> (15 - _MULTIVIEW_SCALABILITY) & 1
    views = 2 if multiview and dimensions[(mask >> 15) & 1] else 1  # ViewOrderIdx of layer 1 is its multiview dimension
    view_id_len = reader.u(4)
    view_ids = [reader.u(view_id_len) for _ in range(views)] if view_id_len else [0] * views
    vps.view_ids = view_ids + view_ids[-1:] * (2 - views)
    dependent = vps.layer1_depends_on_layer0 = reader.flag()  # direct_dependency_flag[1][0]
    if not dependent and reader.ue():  # num_add_layer_sets
        raise BitstreamError("VPSs with additional layer sets are not supported")
    if reader.flag():  # vps_sub_layers_max_minus1_present_flag
        reader.u(2 * 3)
    if reader.flag() and dependent:  # max_tid_ref_present_flag
        reader.u(3)  # max_tid_il_ref_pics_plus1[0][1]
    vps.default_ref_layers_active = reader.flag()
    ptl_count = reader.ue() + 1
    for _ in range(2, ptl_count):
        present = reader.flag()  # vps_profile_present_flag
        level_only = _profile_tier_level(reader, present, 0)
        ptls.append(level_only if present else ProfileTierLevel(ptls[-1].general, level_only.level_idc))
    if len(layer_sets) != 2 or layer_sets[1] != [0, layer_id]:
        raise BitstreamError("VPSs with other layer sets than {0} and {0, 1} are not supported")
    if reader.ue():  # num_add_olss
        raise BitstreamError("VPSs with additional output layer sets are not supported")
    output_idc = reader.u(2)  # default_output_layer_idc: 0 all layers output, 1 the highest, 2 as flagged
    output = [reader.flag() for _ in range(2)] if output_idc == 2 else [output_idc == 0, True]
    necessary = [output[0] or (output[1] and dependent), output[1]]  # NecessaryLayerFlag[1]
    for layer, needed in zip(vps.layer_ids, necessary):
        if needed and ptl_count > 1:
            index = reader.u((ptl_count - 1).bit_length())  # profile_tier_level_idx[1][j]
            if index >= ptl_count:
                raise BitstreamError(f"profile_tier_level_idx {index} of {ptl_count} PTLs")
            vps.layer_ptls[layer] = ptls[index]
    if output.count(True) == 1 and output[1] and dependent:
        reader.u(1)  # alt_output_layer_flag
    if reader.ue():  # vps_num_rep_formats_minus1
        raise BitstreamError("VPSs with several rep_formats are not supported")
    width, height = reader.u(16), reader.u(16)
    if not reader.flag():  # chroma_and_bit_depth_vps_present_flag
        raise BitstreamError("the VPS's rep_format has no chroma format and bit depth")
    chroma = reader.u(2)
    separate = reader.flag() if chroma == 3 else False
    depth_luma, depth_chroma = reader.u(4) + 8, reader.u(4) + 8
    window = (reader.ue(), reader.ue(), reader.ue(), reader.ue()) if reader.flag() else None
    vps.rep_format = RepFormat(width, height, chroma, separate, depth_luma, depth_chroma, window)
    reader.u(2)  # max_one_active_ref_layer_flag, vps_poc_lsb_aligned_flag
    if not dependent:
        reader.u(1)  # poc_lsb_not_present_flag[1]
    reader.u(1)  # dpb_size(): sub_layer_flag_info_present_flag[1]
    for layer, needed in zip(vps.layer_ids, necessary):
        if needed:
            vps.max_dec_pic_buffering_minus1[layer] = reader.ue()
    vps.max_num_reorder_pics, vps.max_latency_increase_plus1 = reader.ue(), reader.ue()


def _write_vps_extension(writer: BitWriter, sps: Sps, base_level: int, view_ids: tuple[int, int],
                         dependent: bool) -> None:
    writer.u(8, base_level)  # profile_tier_level(0, 0): PTL 1, the base profile at its level
    writer.flag(0)  # splitting_flag
    writer.u(16, 1 << (15 - _MULTIVIEW_SCALABILITY))  # scalability_mask_flag[0..15]: multiview only
    writer.u(3, 0)  # dimension_id_len_minus1[0]: 1 bit
    writer.flag(0)  # vps_nuh_layer_id_present_flag: layer 1 has nuh_layer_id 1
    writer.u(1, 1)  # dimension_id[1][0]: ViewOrderIdx 1
    view_bits = max(1, max(view_ids).bit_length())
    writer.u(4, view_bits)  # view_id_len
    for view_id in view_ids:
        writer.u(view_bits, view_id)  # view_id_val
    writer.flag(dependent)  # direct_dependency_flag[1][0]
    if not dependent:
        writer.ue(0)  # num_add_layer_sets (sent when there are several independent layers)
    writer.flag(0)  # vps_sub_layers_max_minus1_present_flag
    writer.flag(0)  # max_tid_ref_present_flag
    writer.flag(0)  # default_ref_layers_active_flag: slices say whether they predict across layers
    writer.ue(2)  # vps_num_profile_tier_level_minus1: PTL 0 (base VPS), 1 (above), 2 (below)
    writer.flag(1)  # vps_profile_present_flag[2]
    general = int.from_bytes(sps.ptl.general, "big")
    tier = (general >> 85) & 1
    source_flags = (general >> 44) & 0xF  # progressive, interlaced, non-packed, frame-only
    writer.u(2, 0)  # general_profile_space
    writer.u(1, tier)
    writer.u(5, MULTIVIEW_MAIN_PROFILE)
    writer.u(32, 1 << (31 - MULTIVIEW_MAIN_PROFILE))  # general_profile_compatibility_flag[6]
    writer.u(4, source_flags)
    writer.u(43, format_constraint_flags(max(sps.bit_depth_luma, sps.bit_depth_chroma), sps.chroma_format_idc))
    writer.u(1, 0)  # general_inbld_flag
    writer.u(8, sps.ptl.level_idc)
    writer.ue(0)  # num_add_olss
    writer.u(2, 0)  # default_output_layer_idc: every layer of an output layer set is output
    writer.u(2, 1)  # profile_tier_level_idx[1][0]: layer 0 in OLS 1 uses PTL 1
    writer.u(2, 2)  # profile_tier_level_idx[1][1]: layer 1 uses Multiview Main
    writer.ue(0)  # vps_num_rep_formats_minus1
    writer.u(16, sps.width)  # rep_format(): pic_width_vps_in_luma_samples
    writer.u(16, sps.height)
    writer.flag(1)  # chroma_and_bit_depth_vps_present_flag
    writer.u(2, sps.chroma_format_idc)
    if sps.chroma_format_idc == 3:
        writer.flag(sps.separate_colour_plane)
    writer.u(4, sps.bit_depth_luma - 8)
    writer.u(4, sps.bit_depth_chroma - 8)
    writer.flag(sps.conformance_window is not None)
    for offset in sps.conformance_window or ():
        writer.ue(offset)
    writer.flag(1)  # max_one_active_ref_layer_flag
    writer.flag(0)  # vps_poc_lsb_aligned_flag
    if not dependent:
        writer.flag(0)  # poc_lsb_not_present_flag[1] (a layer without reference layers): IDR slices send it
    writer.flag(0)  # dpb_size(): sub_layer_flag_info_present_flag[1]
    for _ in range(2):
        writer.ue(sps.max_dec_pic_buffering_minus1)  # max_vps_dec_pic_buffering_minus1[1][k][0]
    writer.ue(sps.max_num_reorder_pics)
    writer.ue(sps.max_latency_increase_plus1)
    writer.ue(0)  # direct_dep_type_len_minus2
    writer.flag(1)  # direct_dependency_all_layers_flag
    writer.u(2, 0)  # direct_dependency_all_layers_type: inter-layer sample prediction
    writer.ue(0)  # vps_non_vui_extension_length
    writer.flag(0)  # vps_vui_present_flag
