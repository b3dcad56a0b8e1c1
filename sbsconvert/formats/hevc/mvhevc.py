"""Assemble two single-layer HEVC streams (left and right eye, encoded alike) into one two-view
MV-HEVC stream, access unit by access unit.

The left stream is the base layer (layer 0, view 0), playable as plain 2D HEVC. The right
stream's pictures become layer 1 (view 1): its SPS becomes a multi-layer SPS (its profile, picture
format and buffer sizes stated in the VPS, as Apple's encoder writes it), its SPS/PPS get their own
ids and nuh_layer_id 1, its slices get layer-1 slice headers (see slice.py), and the base VPS gains
the multiview extension.
The right stream's other NAL units (its VPS, SEI messages, delimiters) are left out: the base
layer's describe the access unit.
Both encoders must have produced the same picture types in the same order (same GOP settings and
frame count), so that each access unit pairs pictures of the same POC.

Two layer structures: as Apple's encoder writes (layer 1 declares layer 0 as its reference layer,
and its first picture, beside the base layer's IDR picture, is a CRA picture), or independent
layers (no reference layer). Every later GOP starts with an IDR picture in both layers: FFmpeg
(8.1) drops the layer-1 pictures of a GOP that starts with a CRA picture after the base
layer's IDR picture (it finds the POC of the CRA picture, 0 again, still in the layer's buffer).
"""

from __future__ import annotations

from sbsconvert.formats.hevc.bits import BitstreamError
from sbsconvert.formats.hevc.nal import PPS, SPS, VPS, NalUnit, join_annexb, split_annexb
from sbsconvert.formats.hevc.params import Pps, Sps, multilayer_sps, multiview_vps, parse_pps, parse_sps, renumber_pps
from sbsconvert.formats.hevc.slice import rewrite_slice_for_layer1


class MultiviewAssembler:
    """Feed it the left and right eye's packets (Annex B) of one access unit at a time."""

    def __init__(self, *, independent: bool = False, opens_stream: bool = True) -> None:
        """`opens_stream`: the first access unit fed is the stream's first (not a later segment's)."""
        self.independent = independent
        self.cra_pending = opens_stream and not independent  # the next layer-1 IDR picture becomes CRA
        self.base_sps: dict[int, Sps] = {}
        self.base_pps_ids: set[int] = set()
        self.right_sps: dict[int, Sps] = {}
        self.right_pps: dict[int, Pps] = {}
        self.pps_id_map: dict[int, int] = {}  # right stream PPS id -> layer-1 PPS id
        self.sps_id_map: dict[int, int] = {}

    def access_unit(self, left: bytes, right: bytes) -> bytes:
        """One access unit of the two-view stream (Annex B) from the two eyes' packets."""
        left_units, right_units = split_annexb(left), split_annexb(right)
        left_vcl = [unit for unit in left_units if unit.is_vcl]
        right_vcl = [unit for unit in right_units if unit.is_vcl]
        if not left_vcl or not right_vcl:
            raise BitstreamError("an eye's packet holds no picture")
        if left_vcl[0].type != right_vcl[0].type:
            raise BitstreamError(f"the eyes' pictures differ in kind (NAL types {left_vcl[0].type} and "
                                 f"{right_vcl[0].type}): the two encodes are not aligned")
        for unit in left_units:
            if unit.type == SPS:
                sps = parse_sps(unit.rbsp)
                self.base_sps[sps.sps_id] = sps
            elif unit.type == PPS:
                self.base_pps_ids.add(parse_pps(unit.rbsp).pps_id)
        base: list[NalUnit] = []
        for unit in left_units:
            if unit.type == VPS:
                if not self.base_sps:
                    raise BitstreamError("the base layer's VPS comes without an SPS")
                sps = next(iter(self.base_sps.values()))
                unit = unit.with_rbsp(multiview_vps(unit.rbsp, sps, dependent=not self.independent))
            base.append(unit)
        layer1_params = [self._layer1_parameter_set(unit) for unit in right_units if unit.type in (SPS, PPS)]
        as_cra = self.cra_pending
        layer1_slices = [self._layer1_slice(unit, as_cra) for unit in right_vcl]
        self.cra_pending = False
        first_vcl = base.index(left_vcl[0])
        # Parameter sets first (both layers'), then the base picture, then the layer-1 picture.
        params_end = max((i + 1 for i, unit in enumerate(base[:first_vcl]) if unit.type in (VPS, SPS, PPS)), default=0)
        return join_annexb(base[:params_end] + layer1_params + base[params_end:] + layer1_slices)

    def _layer1_parameter_set(self, unit: NalUnit) -> NalUnit:
        if unit.type == SPS:
            sps = parse_sps(unit.rbsp)
            base = next(iter(self.base_sps.values()), None)  # the one the VPS describes
            if base is None or _vps_fields(sps) != _vps_fields(base):
                raise BitstreamError("the eyes' encodes differ in picture format or buffer sizes")
            self.right_sps[sps.sps_id] = sps
            new_id = self.sps_id_map.setdefault(sps.sps_id, _free_id(set(self.base_sps) | set(self.sps_id_map.values())))
            return unit.with_rbsp(multilayer_sps(unit.rbsp, new_id), layer_id=1)
        pps = parse_pps(unit.rbsp)
        if pps.sps_id not in self.sps_id_map:
            raise BitstreamError("the right eye's PPS refers to an SPS it has not sent")
        self.right_pps[pps.pps_id] = pps
        new_id = self.pps_id_map.setdefault(pps.pps_id, _free_id(self.base_pps_ids | set(self.pps_id_map.values())))
        return unit.with_rbsp(renumber_pps(unit.rbsp, new_id, self.sps_id_map[pps.sps_id]), layer_id=1)

    def _layer1_slice(self, unit: NalUnit, as_cra: bool) -> NalUnit:
        if not self.right_pps:
            raise BitstreamError("the right eye's picture comes before its parameter sets")
        if unit.layer_id != 0:
            raise BitstreamError("the right eye's stream is multi-layer already")
        # x265 writes one PPS; a slice's own pps id is checked against it in the rewrite
        pps = next(iter(self.right_pps.values())) if len(self.right_pps) == 1 else None
        if pps is None:
            raise BitstreamError("the right eye's stream has several PPSs")
        return rewrite_slice_for_layer1(unit, self.right_sps[pps.sps_id], pps, self.pps_id_map[pps.pps_id],
                                        dependent=not self.independent, idr_as_cra=as_cra)


def _vps_fields(sps: Sps) -> tuple:
    """What layer 1's multi-layer SPS takes from the VPS, which multiview_vps writes from the base
    layer's SPS: the picture format and the picture buffer sizes."""
    return (sps.width, sps.height, sps.conformance_window, sps.chroma_format_idc, sps.separate_colour_plane,
            sps.bit_depth_luma, sps.bit_depth_chroma, sps.max_dec_pic_buffering_minus1, sps.max_num_reorder_pics,
            sps.max_latency_increase_plus1)


def _free_id(used: set[int]) -> int:
    return next(candidate for candidate in range(64) if candidate not in used)
