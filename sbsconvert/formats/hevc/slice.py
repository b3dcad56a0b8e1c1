"""Re-emit a single-layer slice segment as a slice of layer 1 of a two-view stream.

The slice_segment_header of a layer above 0 (F.7.3.6.1) differs from the base layer's: an IDR slice
carries slice_pic_order_cnt_lsb too, and a slice of a layer with a declared reference layer
carries inter_layer_pred_enabled_flag. The header is parsed and written again field by field
(every other field keeps its value, including the RPS, the weighted prediction table and the
entry points); the slice data after it is kept byte for byte. With inter-layer prediction off,
the coded picture decodes exactly as it did in its own stream.

An IDR picture may become a CRA picture, as Apple's encoder codes layer 1 beside the base
layer's IDR picture: a CRA slice states its POC and an empty reference picture set, so it
decodes as the IDR picture did when no picture of the previous GOP is referenced after it (a
closed GOP, as these encodes are).
"""

from __future__ import annotations

from dataclasses import replace

from sbsconvert.formats.hevc.bits import BitCopier, BitReader, BitstreamError, BitWriter
from sbsconvert.formats.hevc.nal import CRA_NUT, NalUnit
from sbsconvert.formats.hevc.params import Pps, Sps, read_short_term_rps

SLICE_B, SLICE_P, SLICE_I = 0, 1, 2


def _ceil_log2(value: int) -> int:
    return (value - 1).bit_length() if value > 1 else 0


def rewrite_slice_for_layer1(unit: NalUnit, sps: Sps, pps: Pps, new_pps_id: int, *, dependent: bool = True,
                             idr_as_cra: bool = False) -> NalUnit:
    """The layer-0 slice segment `unit` (decoded with `sps`/`pps`) as a layer-1 slice that refers
    to PPS `new_pps_id` and does not use inter-layer prediction; `dependent`: layer 1 declares a
    reference layer (the slice says it does not use it); `idr_as_cra`: an IDR slice becomes a CRA
    slice."""
    rbsp = unit.rbsp
    as_cra = idr_as_cra and unit.is_idr
    copier = BitCopier(BitReader(rbsp), BitWriter())
    reader, writer = copier.reader, copier.writer
    first_in_picture = copier.flag()
    if unit.is_irap:
        copier.u(1)  # no_output_of_prior_pics_flag
    if reader.ue() != pps.pps_id:
        raise BitstreamError("slice refers to another PPS than the stream's")
    writer.ue(new_pps_id)
    dependent_segment = False
    if not first_in_picture:
        if pps.dependent_slice_segments:
            dependent_segment = copier.flag()
        copier.u(_ceil_log2(sps.ctb_count))  # slice_segment_address
    if not dependent_segment:
        _independent_fields(copier, unit, sps, pps, dependent, as_cra)
    if pps.tiles or pps.entropy_coding_sync:
        offsets = copier.ue()  # num_entry_point_offsets
        if offsets:
            length = copier.ue() + 1  # offset_len_minus1
            for _ in range(offsets):
                copier.u(length)  # entry_point_offset_minus1: slice data bytes, unchanged
    if pps.slice_header_extension_present:
        for _ in range(copier.ue()):
            copier.u(8)
    if not reader.flag():
        raise BitstreamError("slice header does not end with alignment_bit_equal_to_one")
    while not reader.byte_aligned():
        if reader.u(1):
            raise BitstreamError("slice header alignment bits are not zero")
    writer.trailing_bits()  # byte_alignment()
    layer1 = unit.with_rbsp(writer.to_bytes() + rbsp[reader.position // 8 :], layer_id=1)
    return replace(layer1, type=CRA_NUT) if as_cra else layer1


def _independent_fields(copier: BitCopier, unit: NalUnit, sps: Sps, pps: Pps, dependent: bool, as_cra: bool) -> None:
    """The fields of an independent slice segment, from num_extra_slice_header_bits to
    slice_loop_filter_across_slices_enabled_flag."""
    for _ in range(pps.num_extra_slice_header_bits):
        copier.u(1)  # discardable_flag, cross_layer_bla_flag, slice_reserved_flag
    slice_type = copier.ue()
    if slice_type not in (SLICE_B, SLICE_P, SLICE_I):
        raise BitstreamError(f"unknown slice_type {slice_type}")
    if pps.output_flag_present:
        copier.u(1)  # pic_output_flag
    if sps.separate_colour_plane:
        copier.u(2)  # colour_plane_id
    temporal_mvp = False
    total_current = 0  # NumPicTotalCurr
    if unit.is_idr:
        # Layer 1 sends the POC even in IDR slices (poc_lsb_not_present_flag is 0); an IDR
        # picture's POC is 0, as the base layer's IDR picture of the same access unit.
        copier.writer.u(sps.log2_max_poc_lsb, 0)
        if as_cra:
            _empty_reference_set(copier.writer, sps)
    else:
        copier.u(sps.log2_max_poc_lsb)  # slice_pic_order_cnt_lsb
        if not copier.flag():  # short_term_ref_pic_set_sps_flag
            count = len(sps.short_term_rps)
            rps = read_short_term_rps(copier, count, count, sps.short_term_rps)
        else:
            rps = sps.short_term_rps[copier.u(_ceil_log2(len(sps.short_term_rps)))]
        total_current = rps.used_by_current
        if sps.long_term_refs_present:
            total_current += _long_term_refs(copier, sps)
        if sps.temporal_mvp:
            temporal_mvp = copier.flag()
    if dependent:
        copier.writer.flag(0)  # inter_layer_pred_enabled_flag: the right eye's pictures stand alone
    sao_luma = sao_chroma = False
    if sps.sample_adaptive_offset:
        sao_luma = copier.flag()
        if sps.chroma_array_type:
            sao_chroma = copier.flag()
    if slice_type in (SLICE_P, SLICE_B):
        _inter_fields(copier, sps, pps, slice_type, temporal_mvp, total_current)
    copier.se()  # slice_qp_delta
    if pps.slice_chroma_qp_offsets_present:
        copier.se()
        copier.se()
    deblocking_disabled = pps.deblocking_disabled
    if pps.deblocking_override_enabled and copier.flag():  # deblocking_filter_override_flag
        deblocking_disabled = copier.flag()
        if not deblocking_disabled:
            copier.se()  # slice_beta_offset_div2
            copier.se()  # slice_tc_offset_div2
    if pps.loop_filter_across_slices and (sao_luma or sao_chroma or not deblocking_disabled):
        copier.u(1)  # slice_loop_filter_across_slices_enabled_flag


def _empty_reference_set(writer: BitWriter, sps: Sps) -> None:
    """A non-IDR slice's reference picture fields saying it references no picture."""
    count = len(sps.short_term_rps)
    writer.flag(0)  # short_term_ref_pic_set_sps_flag: the set is in the slice header
    if count:
        writer.flag(0)  # inter_ref_pic_set_prediction_flag
    writer.ue(0)  # num_negative_pics
    writer.ue(0)  # num_positive_pics
    if sps.long_term_refs_present:
        if sps.long_term_used_by_curr:
            writer.ue(0)  # num_long_term_sps
        writer.ue(0)  # num_long_term_pics
    if sps.temporal_mvp:
        writer.flag(0)  # slice_temporal_mvp_enabled_flag: nothing before the picture lends motion


def _long_term_refs(copier: BitCopier, sps: Sps) -> int:
    """The long-term reference fields; returns how many of them the current picture uses."""
    in_sps = len(sps.long_term_used_by_curr)
    from_sps = copier.ue() if in_sps else 0  # num_long_term_sps
    used = 0
    for index in range(from_sps + copier.ue()):  # + num_long_term_pics
        if index < from_sps:
            used += sps.long_term_used_by_curr[copier.u(_ceil_log2(in_sps))]  # lt_idx_sps
        else:
            copier.u(sps.log2_max_poc_lsb)  # poc_lsb_lt
            used += copier.flag()  # used_by_curr_pic_lt_flag
        if copier.flag():  # delta_poc_msb_present_flag
            copier.ue()
    return used


def _inter_fields(copier: BitCopier, sps: Sps, pps: Pps, slice_type: int, temporal_mvp: bool,
                  total_current: int) -> None:
    """From num_ref_idx_active_override_flag to five_minus_max_num_merge_cand."""
    active = list(pps.num_ref_idx_default_active)
    if copier.flag():  # num_ref_idx_active_override_flag
        active[0] = copier.ue() + 1
        if slice_type == SLICE_B:
            active[1] = copier.ue() + 1
    lists = 2 if slice_type == SLICE_B else 1
    if pps.lists_modification_present and total_current > 1:
        for index in range(lists):
            if copier.flag():  # ref_pic_list_modification_flag_lX
                for _ in range(active[index]):
                    copier.u(_ceil_log2(total_current))  # list_entry_lX
    if slice_type == SLICE_B:
        copier.u(1)  # mvd_l1_zero_flag
    if pps.cabac_init_present:
        copier.u(1)  # cabac_init_flag
    if temporal_mvp:
        from_l0 = copier.flag() if slice_type == SLICE_B else True  # collocated_from_l0_flag
        if active[0 if from_l0 else 1] > 1:
            copier.ue()  # collocated_ref_idx
    if (pps.weighted_pred and slice_type == SLICE_P) or (pps.weighted_bipred and slice_type == SLICE_B):
        _pred_weight_table(copier, sps, active[:lists])
    copier.ue()  # five_minus_max_num_merge_cand


def _pred_weight_table(copier: BitCopier, sps: Sps, active: list[int]) -> None:
    """pred_weight_table() (7.3.6.3); every reference is a picture of the same layer at another
    POC, so each has its weight flags."""
    chroma = sps.chroma_array_type != 0
    copier.ue()  # luma_log2_weight_denom
    if chroma:
        copier.se()  # delta_chroma_log2_weight_denom
    for count in active:
        luma = [copier.flag() for _ in range(count)]
        chroma_flags = [copier.flag() for _ in range(count)] if chroma else [False] * count
        for index in range(count):
            if luma[index]:
                copier.se()
                copier.se()  # delta_luma_weight, luma_offset
            if chroma_flags[index]:
                for _ in range(4):
                    copier.se()  # delta_chroma_weight, delta_chroma_offset for Cb and Cr
