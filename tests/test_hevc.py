"""The HEVC bitstream tools on hand-made vectors (bits, NAL units, parameter sets, slice headers,
the multiview VPS), then on real libx265 streams: two eyes assembled into one MV-HEVC stream
decode, through FFmpeg's MV-HEVC decoder, into exactly the pictures each eye's own stream gives."""

import struct
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest

from sbsconvert.formats.hevc.bits import (BitReader, BitstreamError, BitWriter, add_emulation_prevention,
                                  remove_emulation_prevention)
from sbsconvert.formats.hevc.mvhevc import MultiviewAssembler
from sbsconvert.formats.hevc.nal import (CRA_NUT, HVCC_ARRAYS, IDR_N_LP, IDR_W_RADL, LHVC_ARRAYS, PPS, SPS, VPS, NalUnit,
                                         config_record_units, join_annexb, length_prefixed_units, split_annexb)
from sbsconvert.formats.hevc.params import (RepFormat, ShortTermRps, format_constraint_flags, multilayer_sps, multiview_vps,
                                    parse_pps, parse_sps, parse_vps, renumber_pps)
from sbsconvert.formats.hevc.sei import ReferenceDisplays, parse_reference_displays, reference_displays_sei
from sbsconvert.formats.hevc.slice import rewrite_slice_for_layer1
from sbsconvert.video.encode import VideoSettings
from sbsconvert.video.spatial import EyeEncoder, picture_type


# The 43 constraint bits of the layer-1 PTL in Apple's encoder's VPS (an 8-bit 4:2:0 file made
# with AVFoundation): general_max_12bit, max_10bit, max_8bit, max_422chroma, max_420chroma set.
APPLE_8_BIT_420_CONSTRAINTS = 0b11111 << 38
TEN_BIT_420_CONSTRAINTS = 0b11011 << 38  # the same but max_8bit
# The prefix SEI NAL unit in the hvcC of that file: three_dimensional_reference_displays_info
# (payload type 176, 4 bytes) naming left view 0 and right view 1, no display width or shift.
APPLE_3D_REFERENCE_DISPLAYS_SEI = bytes.fromhex("4e01b004040d002080")
# That file's VPS (with the multiview extension) and base-layer SPS from hvcC, and layer 1's SPS
# from lhvC: a multi-layer SPS (sps_ext_or_max_sub_layers_minus1 7), whose profile, picture format
# and buffer sizes are the VPS's (NAL units, headers included).
APPLE_VPS = bytes.fromhex("40010c11ffff016000000300b0000003000003003c15c15b3c200028245970602000000bf8000003"
                          "00000303c8d00a00080a01e5c52bf708")
APPLE_SPS = bytes.fromhex("420101016000000300b0000003000003003ca01420207cb8815ee45951")
APPLE_LAYER1_SPS = bytes.fromhex("42090e822e458a9404")


def bits(text):
    """A BitWriter holding the bits of a '0101...' string (spaces ignored)."""
    writer = BitWriter()
    for char in text.replace(" ", ""):
        writer.u(1, int(char))
    return writer


@pytest.mark.parametrize("value, code", [(0, "1"), (1, "010"), (2, "011"), (3, "00100"), (7, "0001000")])
def test_exp_golomb_codes(value, code):
    writer = BitWriter()
    writer.ue(value)
    writer.u(1, 1)
    writer.align_with(0)
    expected = bits(code + "1")
    expected.align_with(0)
    assert writer.to_bytes() == expected.to_bytes()
    assert BitReader(writer.to_bytes()).ue() == value


@pytest.mark.parametrize("value, code", [(0, "1"), (1, "010"), (-1, "011"), (2, "00100"), (-2, "00101")])
def test_signed_exp_golomb_codes(value, code):
    writer = BitWriter()
    writer.se(value)
    assert writer.position == len(code)
    writer.align_with(0)
    assert BitReader(writer.to_bytes()).se() == value


def test_fixed_fields_and_bounds():
    reader = BitReader(bytes([0b10110000, 0xFF]))
    assert reader.u(1) == 1 and reader.u(3) == 0b011 and reader.u(8) == 0b00001111 and reader.bits_left == 4
    with pytest.raises(BitstreamError):
        reader.u(5)
    with pytest.raises(BitstreamError):
        BitWriter().u(2, 4)


def test_payload_end_finds_the_stop_bit():
    assert BitReader(bytes([0b10100000, 0x00])).payload_end() == 2  # bit 2 is the stop bit
    assert BitReader(bytes([0x00, 0x01])).payload_end() == 15


@pytest.mark.parametrize("rbsp, ebsp", [
    (b"\x00\x00\x01", b"\x00\x00\x03\x01"),
    (b"\x00\x00\x00\x00", b"\x00\x00\x03\x00\x00\x03"),  # the second pair counts after the inserted byte
    (b"\x00\x00\x04", b"\x00\x00\x04"),
    (b"\x12\x00\x00\x02\x00\x00\x03", b"\x12\x00\x00\x03\x02\x00\x00\x03\x03"),
    (b"\x80\x00\x00", b"\x80\x00\x00\x03"),  # a final cabac_zero_word gets its 0x03
])
def test_emulation_prevention(rbsp, ebsp):
    assert add_emulation_prevention(rbsp) == ebsp
    assert remove_emulation_prevention(ebsp) == rbsp


def test_nal_header_and_annexb_round_trip():
    unit = NalUnit.from_bytes(b"\x40\x01\xAA")
    assert (unit.type, unit.layer_id, unit.temporal_id, unit.payload) == (VPS, 0, 0, b"\xAA")
    layer1 = NalUnit(SPS, 1, 0, b"\x01")
    assert layer1.to_bytes()[:2] == bytes([SPS << 1, 0x09])  # nuh_layer_id 1 straddles the two bytes
    stream = b"\x00\x00\x01" + unit.to_bytes() + b"\x00\x00\x00\x01" + layer1.to_bytes()
    assert split_annexb(stream) == [unit, layer1]
    assert split_annexb(join_annexb([unit, layer1])) == [unit, layer1]
    with pytest.raises(BitstreamError):
        NalUnit.from_bytes(b"\x80\x01")  # forbidden_zero_bit


def write_ptl(writer, profile=1, level=93):
    writer.u(2, 0)
    writer.u(1, 0)
    writer.u(5, profile)
    writer.u(32, 1 << (31 - profile))
    writer.u(4, 0b1001)  # progressive, frame-only
    writer.u(44, 0)
    writer.u(8, level)


# A VUI as libx265 writes one, with the rarer fields too: an extended SAR, the colour description,
# a default display window, timing and bitstream restrictions (E.2.1).
HAND_VUI = ("1 11111111 0000000000000001 0000000000000001" "0" "1 101 0 1 00000001 00000001 00000001" "0" "000"
            "1 1 1 1 010" "1 00000000000000000000000000000001 00000000000000000000000000011110 0 0"
            "1 001 1 1 1 1 1")


def hand_sps(sps_id=0, width=64, height=48, window=None, rps_text=None, bit_depth=8, vui=None, scaling_lists=False):
    """A small Main SPS like libx265's: 16x16 CTBs... with two short-term RPSs, the second predicted;
    `vui`: the bits of its VUI."""
    writer = BitWriter()
    writer.u(4, 0)  # vps id
    writer.u(3, 0)
    writer.u(1, 1)
    write_ptl(writer)
    writer.ue(sps_id)
    writer.ue(1)  # 4:2:0
    writer.ue(width)
    writer.ue(height)
    writer.flag(window is not None)
    for offset in window or ():
        writer.ue(offset)
    writer.ue(bit_depth - 8)
    writer.ue(bit_depth - 8)
    writer.ue(4)  # log2_max_pic_order_cnt_lsb_minus4: 8 bits
    writer.flag(1)
    writer.ue(4)  # max_dec_pic_buffering_minus1
    writer.ue(2)  # max_num_reorder_pics
    writer.ue(0)
    writer.ue(0)  # log2 min cb 3
    writer.ue(1)  # ctb 16
    for value in (0, 3, 1, 1):
        writer.ue(value)
    writer.flag(scaling_lists)
    if scaling_lists:
        writer.flag(0)  # sps_scaling_list_data_present_flag: the default lists
    writer.flag(1)  # amp
    writer.flag(1)  # sao
    writer.flag(0)  # pcm
    writer.ue(2)  # two short-term RPSs
    writer.ue(1)  # set 0: one negative picture at -1 (used), no positive
    writer.ue(0)
    writer.ue(0)
    writer.flag(1)
    writer.flag(1)  # set 1: predicted from set 0
    writer.flag(0)  # delta_rps_sign +
    writer.ue(1)  # abs_delta_rps_minus1: deltaRps = +2
    for flag in "1" "1":  # used_by_curr_pic_flag for j = 0 (-1 + 2 = +1) and j = 1 (the ref itself, +2)
        writer.flag(int(flag))
    writer.flag(0)  # long-term
    writer.flag(1)  # temporal mvp
    writer.flag(1)  # strong intra smoothing
    writer.flag(vui is not None)
    for char in (vui or "").replace(" ", ""):
        writer.u(1, int(char))
    writer.flag(0)  # extension
    writer.trailing_bits()
    return writer.to_bytes()


def hand_pps(pps_id=0, sps_id=0, weighted=True, sync=True):
    writer = BitWriter()
    writer.ue(pps_id)
    writer.ue(sps_id)
    writer.flag(0)  # dependent slices
    writer.flag(0)  # output flag present
    writer.u(3, 0)
    writer.flag(1)  # sign data hiding
    writer.flag(0)  # cabac init present
    writer.ue(0)
    writer.ue(0)
    writer.se(0)
    writer.flag(0)
    writer.flag(0)
    writer.flag(1)  # cu_qp_delta
    writer.ue(1)
    writer.se(0)
    writer.se(0)
    writer.flag(0)  # slice chroma qp offsets
    writer.flag(weighted)
    writer.flag(0)
    writer.flag(0)
    writer.flag(0)  # tiles
    writer.flag(sync)
    writer.flag(1)  # loop filter across slices
    writer.flag(1)  # deblocking control
    writer.flag(0)  # override enabled
    writer.flag(0)  # disabled
    writer.se(0)
    writer.se(0)
    writer.flag(0)  # scaling list
    writer.flag(0)  # lists modification
    writer.ue(0)
    writer.flag(0)
    writer.flag(0)
    writer.trailing_bits()
    return writer.to_bytes()


def test_sps_fields_and_predicted_rps():
    sps = parse_sps(hand_sps(width=64, height=48, window=(0, 2, 0, 1)))
    assert (sps.width, sps.height, sps.conformance_window, sps.chroma_format_idc) == (64, 48, (0, 2, 0, 1), 1)
    assert (sps.bit_depth_luma, sps.log2_max_poc_lsb, sps.log2_ctb_size, sps.ctb_count) == (8, 8, 4, 12)
    assert (sps.max_dec_pic_buffering_minus1, sps.max_num_reorder_pics) == (4, 2)
    assert sps.sample_adaptive_offset and sps.temporal_mvp and not sps.long_term_refs_present
    assert sps.short_term_rps[0] == ShortTermRps([(-1, True)], [])
    # Predicted by +2 from {-1}: -1 + 2 = +1 and the reference itself at +2, both after the picture.
    assert sps.short_term_rps[1] == ShortTermRps([], [(1, True), (2, True)])
    assert sps.short_term_rps[1].used_by_current == 2


def test_renumbered_pps_keeps_every_other_field():
    pps = parse_pps(renumber_pps(hand_pps(), 1, 1))
    assert (pps.pps_id, pps.sps_id) == (1, 1)
    assert {**vars(pps), "pps_id": 0, "sps_id": 0} == vars(parse_pps(hand_pps()))


def hand_vps(timing=True):
    writer = BitWriter()
    writer.u(4, 0)
    writer.flag(1)
    writer.flag(1)
    writer.u(6, 0)
    writer.u(3, 0)
    writer.flag(1)
    writer.u(16, 0xFFFF)
    write_ptl(writer)
    writer.flag(1)
    writer.ue(4)
    writer.ue(2)
    writer.ue(0)
    writer.u(6, 0)
    writer.ue(0)
    writer.flag(timing)
    if timing:
        writer.u(32, 1)
        writer.u(32, 30)
        writer.flag(0)
        writer.ue(0)
    writer.flag(0)
    writer.trailing_bits()
    return writer.to_bytes()


@pytest.mark.parametrize("dependent", [True, False])
def test_multiview_vps_extension_fields(dependent):
    """Read the extended VPS back field by field (F.7.3.2.1, F.7.3.2.1.1): layer 1 declares layer
    0 as its reference layer (as Apple's encoder), or none (independent layers)."""
    sps = parse_sps(hand_sps(window=(0, 2, 0, 1), bit_depth=10))
    reader = BitReader(multiview_vps(hand_vps(), sps, dependent=dependent))
    assert reader.u(4) == 0 and reader.u(2) == 0b11
    assert reader.u(6) == 1  # vps_max_layers_minus1
    assert reader.u(3) == 0 and reader.u(1) == 1 and reader.u(16) == 0xFFFF
    reader.u(96)  # PTL 0 unchanged
    assert reader.u(1) == 1 and [reader.ue() for _ in range(3)] == [4, 2, 0]
    assert reader.u(6) == 1 and reader.ue() == 1  # vps_max_layer_id, vps_num_layer_sets_minus1
    assert reader.u(2) == 0b11  # layer set 1 holds layers 0 and 1
    assert reader.u(1) == 1 and reader.u(32) == 1 and reader.u(32) == 30 and reader.u(1) == 0 and reader.ue() == 0
    assert reader.u(1) == 1  # vps_extension_flag
    while not reader.byte_aligned():
        assert reader.u(1) == 1
    assert reader.u(8) == 93  # PTL 1: level only
    assert reader.u(1) == 0 and reader.u(16) == 0x4000  # splitting_flag, scalability mask: multiview
    assert reader.u(3) == 0 and reader.u(1) == 0 and reader.u(1) == 1  # dimension_id_len 1, dimension_id 1
    view_id_len = reader.u(4)
    assert view_id_len == 1 and [reader.u(view_id_len) for _ in range(2)] == [0, 1]
    assert reader.u(1) == dependent  # direct_dependency_flag[1][0]
    if not dependent:
        assert reader.ue() == 0  # num_add_layer_sets: two independent layers
    assert (reader.u(1), reader.u(1), reader.u(1)) == (0, 0, 0)
    assert reader.ue() == 2 and reader.u(1) == 1  # three PTLs, the third with a profile
    assert reader.u(2) == 0 and reader.u(1) == 0 and reader.u(5) == 6  # Multiview Main
    assert reader.u(32) == 1 << 25
    reader.u(4)  # source flags, as the base layer's
    # 10-bit 4:2:0: max_12bit, max_10bit, not max_8bit, max_422chroma, max_420chroma (Multiview Main 10)
    assert reader.u(43) == TEN_BIT_420_CONSTRAINTS and reader.u(1) == 0
    assert reader.u(8) == 93
    assert reader.ue() == 0 and reader.u(2) == 0  # num_add_olss, default_output_layer_idc
    assert (reader.u(2), reader.u(2)) == (1, 2)  # profile_tier_level_idx of OLS 1
    assert reader.ue() == 0  # one rep_format
    assert (reader.u(16), reader.u(16), reader.u(1), reader.u(2), reader.u(4), reader.u(4)) == (64, 48, 1, 1, 2, 2)
    assert reader.u(1) == 1 and [reader.ue() for _ in range(4)] == [0, 2, 0, 1]
    assert (reader.u(1), reader.u(1)) == (1, 0)  # max_one_active_ref_layer_flag, vps_poc_lsb_aligned_flag
    if not dependent:
        assert reader.u(1) == 0  # poc_lsb_not_present_flag[1]: a layer without reference layers
    assert reader.u(1) == 0  # sub_layer_flag_info_present_flag
    assert [reader.ue() for _ in range(4)] == [4, 4, 2, 0]  # dpb_size
    assert reader.ue() == 0 and reader.u(1) == 1 and reader.u(2) == 0  # dependency type: all layers, 0
    assert reader.ue() == 0 and reader.u(1) == 0 and reader.u(1) == 0  # no non-VUI ext, no VUI, no ext2
    assert reader.u(1) == 1 and reader.payload_end() == reader.position - 1


def test_parse_vps_reads_what_multiview_vps_writes():
    sps = parse_sps(hand_sps(window=(0, 2, 0, 1), bit_depth=10))
    for dependent in (True, False):
        vps = parse_vps(multiview_vps(hand_vps(), sps, (0, 5), dependent=dependent))
        assert (vps.layer_ids, vps.view_ids, vps.layer1_depends_on_layer0) == ([0, 1], [0, 5], dependent)
        assert vps.layer_ptls[0] == sps.ptl and vps.layer_ptls[1].profile_idc == 6
        assert (vps.layer_ptls[1].max_bit_depth, vps.layer_ptls[1].level_idc) == (10, 93)  # Multiview Main 10
        assert vps.rep_format == RepFormat(64, 48, 1, False, 10, 10, (0, 2, 0, 1))
        assert vps.max_dec_pic_buffering_minus1 == {0: 4, 1: 4} and vps.max_num_reorder_pics == 2
    single = parse_vps(hand_vps())
    assert single.layer_ptls == {0: single.ptl} and single.rep_format is None


def test_apples_vps_names_layer_1_multiview_main():
    vps = parse_vps(NalUnit.from_bytes(APPLE_VPS).rbsp)
    assert vps.layer_ids == [0, 1] and vps.view_ids == [0, 1]
    assert vps.layer1_depends_on_layer0 and vps.default_ref_layers_active
    base, layer1 = vps.layer_ptls[0], vps.layer_ptls[1]
    assert (base.profile_idc, base.max_bit_depth, base.level_idc) == (1, 8, 60)  # Main, level 2
    assert (layer1.profile_idc, layer1.max_bit_depth, layer1.level_idc) == (6, 8, 60)  # Multiview Main
    assert (int.from_bytes(layer1.general, "big") >> 1) & ((1 << 43) - 1) == APPLE_8_BIT_420_CONSTRAINTS
    assert vps.rep_format == RepFormat(160, 128, 1, False, 8, 8, (0, 0, 0, 4))  # 120 lines shown
    assert vps.max_dec_pic_buffering_minus1 == {0: 4, 1: 4}
    assert (vps.max_num_reorder_pics, vps.max_latency_increase_plus1) == (2, 0)


def test_apples_layer1_sps_is_its_base_sps_in_the_multilayer_form():
    vps = parse_vps(NalUnit.from_bytes(APPLE_VPS).rbsp)
    base, unit = NalUnit.from_bytes(APPLE_SPS), NalUnit.from_bytes(APPLE_LAYER1_SPS)
    assert unit.layer_id == 1 and (unit.rbsp[0] >> 1) & 7 == 7  # sps_ext_or_max_sub_layers_minus1
    layer1, base_sps = parse_sps(unit.rbsp, 1, vps), parse_sps(base.rbsp)
    assert layer1.ptl == vps.layer_ptls[1] and layer1.sps_id == 1
    assert {**vars(layer1), "ptl": base_sps.ptl, "sps_id": 0} == vars(base_sps)
    # Written from the base layer's SPS, it is Apple's bit for bit: no PTL, format and buffer sizes
    # from the VPS, scaling lists not inferred, no VUI, the multi-layer extension flag set and
    # inter_view_mv_vert_constraint_flag 0.
    assert multilayer_sps(base.rbsp, 1) == unit.rbsp
    with pytest.raises(BitstreamError, match="VPS"):
        parse_sps(unit.rbsp, 1)


def test_multilayer_sps_keeps_the_vui_and_adds_the_multilayer_extension():
    original = hand_sps(window=(0, 2, 0, 1), vui=HAND_VUI, scaling_lists=True)
    rbsp = multilayer_sps(original, 2)
    vps = parse_vps(multiview_vps(hand_vps(), parse_sps(original)))
    assert {**vars(parse_sps(rbsp, 1, vps)), "ptl": None, "sps_id": 0} == {**vars(parse_sps(original)), "ptl": None}
    text = "".join(f"{byte:08b}" for byte in rbsp)
    vui = HAND_VUI.replace(" ", "")
    # ... strong intra smoothing, the VUI, sps_extension_present_flag, multilayer only, the flag 0, stop bit
    assert text.rstrip("0") == text[: text.index(vui) - 2] + "11" + vui + "1" "01000000" "0" "1"
    with pytest.raises(BitstreamError, match="HRD"):
        multilayer_sps(hand_sps(vui=HAND_VUI.replace("00011110 0 0", "00011110 0 1")), 1)


def hand_slice(nal_type, pps_id=0, poc=3, slice_type=1, data=b"\xAB\x00\x00\x01\xCD"):
    """A first slice segment: IDR I slice, or a P slice using SPS RPS 0 with weighted prediction."""
    writer = BitWriter()
    writer.flag(1)
    if 16 <= nal_type <= 23:
        writer.flag(0)
    writer.ue(pps_id)
    writer.ue(slice_type)
    if nal_type not in (19, 20):
        writer.u(8, poc)
        writer.flag(1)  # RPS from the SPS
        writer.u(1, 0)  # short_term_ref_pic_set_idx (2 sets: 1 bit)
        writer.flag(1)  # slice_temporal_mvp_enabled_flag
    writer.flag(1)
    writer.flag(1)  # SAO luma, chroma
    if slice_type == 1:
        writer.flag(0)  # no override
        writer.ue(7)  # luma_log2_weight_denom
        writer.se(-1)
        writer.flag(1)  # luma weight flag l0[0]
        writer.flag(0)  # chroma weight flag
        writer.se(3)
        writer.se(-2)
        writer.ue(0)  # five_minus_max_num_merge_cand
    writer.se(-4)  # slice_qp_delta
    writer.flag(1)  # loop filter across slices
    writer.ue(2)  # entry points
    writer.ue(4)  # offset_len 5
    writer.u(5, 17)
    writer.u(5, 9)
    writer.trailing_bits()
    return NalUnit(nal_type, 0, 0, add_emulation_prevention(writer.to_bytes() + data))


@pytest.mark.parametrize("nal_type, dependent, as_cra", [(IDR_W_RADL, True, False), (1, True, False),
                                                        (IDR_W_RADL, True, True), (1, True, True),
                                                        (IDR_W_RADL, False, False), (1, False, False)])
def test_layer1_slice_header(nal_type, dependent, as_cra):
    """Layer-1 slice headers: with a reference layer, inter_layer_pred_enabled_flag (0) is sent;
    an IDR slice turned CRA states POC 0 and an empty reference picture set (other slices keep theirs)."""
    sps, pps = parse_sps(hand_sps()), parse_pps(hand_pps())
    unit = rewrite_slice_for_layer1(hand_slice(nal_type, slice_type=2 if nal_type == IDR_W_RADL else 1), sps, pps, 5,
                                    dependent=dependent, idr_as_cra=as_cra)
    cra = as_cra and nal_type == IDR_W_RADL
    assert (unit.type, unit.layer_id) == (CRA_NUT if cra else nal_type, 1)
    reader = BitReader(unit.rbsp)
    assert reader.u(1) == 1
    if nal_type == IDR_W_RADL:
        assert reader.u(1) == 0
    assert reader.ue() == 5  # the layer-1 PPS id
    if nal_type == IDR_W_RADL:
        assert reader.ue() == 2 and reader.u(8) == 0  # POC lsb present in a layer-1 IDR slice
        if cra:
            # short_term_ref_pic_set_sps_flag 0, inter_ref_pic_set_prediction_flag 0, no negative or
            # positive pictures, slice_temporal_mvp_enabled_flag 0
            assert reader.u(2) == 0 and reader.ue() == 0 and reader.ue() == 0 and reader.u(1) == 0
    else:
        assert reader.ue() == 1 and reader.u(8) == 3 and reader.u(1) == 1 and reader.u(1) == 0 and reader.u(1) == 1
    if dependent:
        assert reader.u(1) == 0  # inter_layer_pred_enabled_flag
    assert reader.u(2) == 0b11
    if nal_type != IDR_W_RADL:
        assert reader.u(1) == 0 and reader.ue() == 7 and reader.se() == -1
        assert reader.u(2) == 0b10 and reader.se() == 3 and reader.se() == -2 and reader.ue() == 0
    assert reader.se() == -4 and reader.u(1) == 1
    assert reader.ue() == 2 and reader.ue() == 4 and reader.u(5) == 17 and reader.u(5) == 9
    assert reader.u(1) == 1
    while not reader.byte_aligned():
        assert reader.u(1) == 0
    assert unit.rbsp[reader.position // 8 :] == b"\xAB\x00\x00\x01\xCD"  # slice data untouched
    assert b"\x00\x00\x03\x01" in unit.payload  # and escaped again


def test_reference_displays_sei_is_apples():
    """The SEI naming the eyes, byte for byte as Apple's encoder writes it, and read back."""
    unit = reference_displays_sei(left_view_id=0, right_view_id=1)
    assert unit.to_bytes() == APPLE_3D_REFERENCE_DISPLAYS_SEI
    assert parse_reference_displays(NalUnit.from_bytes(APPLE_3D_REFERENCE_DISPLAYS_SEI)) == ReferenceDisplays(0, 1)
    assert parse_reference_displays(reference_displays_sei(left_view_id=1, right_view_id=0)) == ReferenceDisplays(1, 0)


def test_format_constraint_flags():
    assert format_constraint_flags(8, 1) == APPLE_8_BIT_420_CONSTRAINTS
    assert format_constraint_flags(10, 1) == TEN_BIT_420_CONSTRAINTS


def test_slice_with_a_foreign_pps_is_refused():
    with pytest.raises(BitstreamError):
        rewrite_slice_for_layer1(hand_slice(1, pps_id=3), parse_sps(hand_sps()), parse_pps(hand_pps()), 1)


def encode_eye(frames, pixel_format="yuv420p", keyint=7):
    """Packets (bytes, pts, dts) of one eye encoded as spatial video encodes each eye."""
    settings = VideoSettings(codec="hevc", crf=26, pixel_format=pixel_format)
    encoder = EyeEncoder(frames[0].shape[1], frames[0].shape[0], settings, pixel_format=pixel_format,
                         time_base=Fraction(1, 30), frame_rate=Fraction(30), keyint=keyint)
    packets = []
    for index, image in enumerate(frames + [None]):
        frame = None
        if image is not None:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pixel_format)
            frame.pts = index
        packets += [(bytes(packet), packet.pts, packet.dts) for packet in encoder.encode(frame)]
    return packets


def decode_raw(path, all_views=False):
    with av.open(str(path), format="hevc") as container:
        stream = container.streams.video[0]
        if all_views:
            stream.codec_context.options = {"view_ids": "-1"}
        return [[bytes(plane) for plane in frame.planes] for frame in container.decode(stream)]


def eye_frames(count, width, height, offset):
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 256, (height, width + 3 * count + 16, 3), dtype=np.uint8)
    return [np.ascontiguousarray(scene[:, offset + 3 * i : offset + 3 * i + width]) for i in range(count)]


@pytest.mark.parametrize("pixel_format, size", [
    ("yuv420p", (64, 48)),
    ("yuv420p10le", (68, 42)),  # not a multiple of 8: a conformance window
    ("yuv420p", (256, 144)),  # three rows of 64x64 CTBs: wavefront entry points in every slice header
])
@pytest.mark.parametrize("independent", [False, True])
def test_assembled_stream_decodes_both_views_bit_exactly(tmp_path, pixel_format, size, independent):
    """Either layer structure; in Apple's, layer 1 starts with a CRA picture and later GOPs with IDR pictures."""
    count = 16  # three GOPs and a trailing run of B-frames at the end
    left = encode_eye(eye_frames(count, *size, 0), pixel_format)
    right = encode_eye(eye_frames(count, *size, 5), pixel_format)
    types = [split_annexb(data)[-1].type for data, *_ in left]
    assert types.count(IDR_W_RADL) + types.count(IDR_N_LP) == 3 and len(set(types)) >= 3  # IDR, P/B kinds
    assembler = MultiviewAssembler(independent=independent)
    merged = b"".join(assembler.access_unit(l, r) for (l, *_), (r, *_) in zip(left, right))
    units = split_annexb(merged)
    layer1_irap = [unit.type for unit in units if unit.layer_id == 1 and unit.is_irap]
    assert layer1_irap == ([IDR_N_LP] * 3 if independent else [CRA_NUT, IDR_N_LP, IDR_N_LP])
    assert {unit.layer_id for unit in units if unit.type in (SPS, PPS)} == {0, 1}
    assert {unit.layer_id for unit in units if unit.is_vcl} == {0, 1}
    # Layer 1's SPS is a multi-layer SPS, as Apple's: its profile (Multiview Main, of the format's
    # bit depth), picture format and buffer sizes are the VPS's, and its other fields the right eye's.
    vps = parse_vps(next(unit for unit in units if unit.type == VPS).rbsp)
    layer1_sps = next(unit for unit in units if unit.type == SPS and unit.layer_id == 1)
    assert (layer1_sps.rbsp[0] >> 1) & 7 == 7
    assert (vps.layer_ptls[1].profile_idc, vps.layer_ptls[1].max_bit_depth) == (6, 10 if "10" in pixel_format else 8)
    right_sps = parse_sps(next(unit for unit in split_annexb(right[0][0]) if unit.type == SPS).rbsp)
    assert parse_sps(layer1_sps.rbsp, 1, vps) == replace(right_sps, ptl=vps.layer_ptls[1], sps_id=1)
    for name, packets in (("left", left), ("right", right)):
        (tmp_path / f"{name}.hevc").write_bytes(b"".join(data for data, *_ in packets))
    (tmp_path / "mv.hevc").write_bytes(merged)
    views = decode_raw(tmp_path / "mv.hevc", all_views=True)
    own_left, own_right = decode_raw(tmp_path / "left.hevc"), decode_raw(tmp_path / "right.hevc")
    assert len(views) == 2 * count and len(own_left) == len(own_right) == count
    assert views[0::2] == own_left and views[1::2] == own_right  # view 0 then view 1 of every access unit
    assert decode_raw(tmp_path / "mv.hevc") == own_left  # the base layer alone is the left eye


def test_picture_types_follow_one_pattern():
    kinds = "".join(picture_type(index, 12).name for index in range(14))
    assert kinds == "IBBBBPBBBBPPIB"  # runs of 4 B-frames, a P closing the GOP


def test_eyes_of_different_formats_are_refused():
    """Layer 1's SPS takes its picture format from the VPS, which states the base layer's."""
    assembler = MultiviewAssembler()
    left, right = encode_eye(eye_frames(1, 64, 48, 0)), encode_eye(eye_frames(1, 64, 32, 0))
    with pytest.raises(BitstreamError, match="picture format"):
        assembler.access_unit(left[0][0], right[0][0])


def test_misaligned_eyes_are_refused():
    frames = eye_frames(4, 64, 48, 0)
    left = encode_eye(frames)
    right = encode_eye(frames, keyint=2)
    assembler = MultiviewAssembler()
    with pytest.raises(BitstreamError, match="not aligned"):
        for (l, *_), (r, *_) in zip(left, right):
            assembler.access_unit(l, r)


def test_nal_units_as_mp4_holds_them_in_samples_and_configuration_records():
    """ISO/IEC 14496-15: a sample's NAL units each follow a 4-byte length; an hvcC (lhvC) record's
    arrays, after a 22-byte (5-byte) header and numOfArrays, give each NAL unit a 2-byte length."""
    vps, sps = NalUnit(VPS, 0, 0, b"\x0c\x01"), NalUnit(SPS, 1, 0, b"\x42")
    sample = b"".join(len(unit.to_bytes()).to_bytes(4, "big") + unit.to_bytes() for unit in (vps, sps))
    assert list(length_prefixed_units(sample)) == [vps, sps]
    array = lambda unit: bytes([0x80 | unit.type]) + b"\x00\x01" + len(unit.to_bytes()).to_bytes(2, "big") + unit.to_bytes()
    for header, start in ((bytes(22), HVCC_ARRAYS), (bytes(5), LHVC_ARRAYS)):
        record = header + b"\x02" + array(vps) + array(sps)
        assert list(config_record_units(record, start)) == [vps, sps]
        with pytest.raises(struct.error):  # a record cut inside its second array's length
            list(config_record_units(record[:-4], start))
