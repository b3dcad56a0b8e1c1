"""HEVC parameter sets (H.265 clauses 7.3.2 and F.7.3.2.1): the SPS and PPS fields that slice
headers depend on, giving a layer its own parameter set ids, and the VPS of a two-view
(multiview, MV-HEVC) stream built from a single-layer one.

Only what the slice-header rewrite and the VPS extension need is parsed; the SPS stops before
its VUI. Features a plain libx265 Main/Main 10 stream does not use (several temporal sub-layers,
HRD parameters in the VPS, PPS range/SCC extensions) are refused with BitstreamError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sbsconvert.hevc.bits import BitCopier, BitReader, BitstreamError, BitWriter

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


def _scaling_list_data(reader: BitReader) -> None:
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


def parse_sps(rbsp: bytes) -> Sps:
    """A base-layer SPS (seq_parameter_set_rbsp, nuh_layer_id 0), read up to its VUI."""
    reader = BitReader(rbsp)
    vps_id = reader.u(4)
    max_sub_layers_minus1 = reader.u(3)
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
    log2_min_cb = reader.ue() + 3
    log2_ctb = log2_min_cb + reader.ue()
    for _ in range(4):
        reader.ue()  # transform block sizes and hierarchy depths
    if reader.flag() and reader.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _scaling_list_data(reader)
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
    temporal_mvp = reader.flag()
    return Sps(vps_id, max_sub_layers_minus1, ptl, sps_id, chroma, separate, width, height, window, depth_luma,
               depth_chroma, log2_max_poc_lsb, dpb, reorder, latency, log2_min_cb, log2_ctb, sao, sets, long_term,
               lt_used, temporal_mvp)


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


def renumber_sps(rbsp: bytes, sps_id: int) -> bytes:
    """The SPS with sps_seq_parameter_set_id set to `sps_id`, every other field kept. Parameter set
    ids are shared by all layers, so a second layer's SPS needs an id the base layer does not use."""
    copier = BitCopier(BitReader(rbsp), BitWriter())
    copier.u(4)
    max_sub_layers_minus1 = copier.u(3)
    copier.u(1)
    if max_sub_layers_minus1:
        raise BitstreamError("streams with temporal sub-layers are not supported")
    copier.u(88)
    copier.u(8)  # general profile, tier and level
    copier.reader.ue()
    copier.writer.ue(sps_id)
    copier.rest()
    return copier.writer.to_bytes()


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
