"""HEVC NAL units in Annex B byte streams (H.265 clauses 7.3.1 and B.2): split on start codes,
read and rewrite the two-byte NAL unit header, join again; and as MP4/MOV hold them (ISO/IEC
14496-15): length-prefixed in samples, in arrays in the decoder configuration records."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from typing import Iterator

from sbsconvert.formats.hevc.bits import BitstreamError, add_emulation_prevention, remove_emulation_prevention

# nal_unit_type values (Table 7-1) this package deals with.
IDR_W_RADL, IDR_N_LP, CRA_NUT = 19, 20, 21
BLA_W_LP, RSV_IRAP_VCL23 = 16, 23
VPS, SPS, PPS, AUD, EOS, EOB, FD, PREFIX_SEI, SUFFIX_SEI = 32, 33, 34, 35, 36, 37, 38, 39, 40

_START_CODE = re.compile(b"\x00\x00\x01")


@dataclass(frozen=True)
class NalUnit:
    type: int
    layer_id: int
    temporal_id: int  # TemporalId, i.e. nuh_temporal_id_plus1 - 1
    payload: bytes  # EBSP after the two header bytes (emulation prevention bytes included)

    @property
    def is_vcl(self) -> bool:
        return self.type < 32

    @property
    def is_irap(self) -> bool:
        return BLA_W_LP <= self.type <= RSV_IRAP_VCL23

    @property
    def is_idr(self) -> bool:
        return self.type in (IDR_W_RADL, IDR_N_LP)

    @property
    def rbsp(self) -> bytes:
        return remove_emulation_prevention(self.payload)

    def with_rbsp(self, rbsp: bytes, layer_id: int | None = None) -> NalUnit:
        """The same kind of NAL unit carrying `rbsp` (escaped here), optionally in another layer."""
        return replace(self, payload=add_emulation_prevention(rbsp),
                       layer_id=self.layer_id if layer_id is None else layer_id)

    def to_bytes(self) -> bytes:
        """The NAL unit: header (forbidden_zero_bit, type, nuh_layer_id, nuh_temporal_id_plus1) and payload."""
        header = (self.type << 9) | (self.layer_id << 3) | (self.temporal_id + 1)
        return header.to_bytes(2, "big") + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> NalUnit:
        if len(data) < 2:
            raise BitstreamError("NAL unit shorter than its header")
        header = int.from_bytes(data[:2], "big")
        if header >> 15:
            raise BitstreamError("forbidden_zero_bit is set")
        if header & 7 == 0:
            raise BitstreamError("nuh_temporal_id_plus1 is 0")
        return cls((header >> 9) & 0x3F, (header >> 3) & 0x3F, (header & 7) - 1, bytes(data[2:]))


def split_annexb(stream: bytes) -> list[NalUnit]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes, trailing zeros dropped)."""
    starts = [match.end() for match in _START_CODE.finditer(stream)]
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(stream)
        data = stream[start:end].rstrip(b"\x00")  # zero_byte of the next start code, trailing_zero_8bits
        if data:
            units.append(NalUnit.from_bytes(data))
    return units


def length_prefixed_units(sample: bytes, length_size: int = 4) -> Iterator[NalUnit]:
    """The NAL units of an MP4/MOV sample, each after its big-endian length."""
    position = 0
    while position + length_size <= len(sample):
        length = int.from_bytes(sample[position : position + length_size], "big")
        yield NalUnit.from_bytes(sample[position + length_size : position + length_size + length])
        position += length_size + length


# Where the NAL unit arrays of a decoder configuration record start, right after numOfArrays:
# hvcC (14496-15 8.3.3) and lhvC (9.6.3).
HVCC_ARRAYS, LHVC_ARRAYS = 23, 6


def config_record_units(record: bytes, arrays_start: int) -> Iterator[NalUnit]:
    """The NAL units in the arrays of an hvcC or lhvC record (`arrays_start`: HVCC_ARRAYS or
    LHVC_ARRAYS); a cut-off record raises struct.error or IndexError where it stops."""
    position = arrays_start
    for _ in range(record[position - 1]):
        (count,) = struct.unpack_from(">H", record, position + 1)
        position += 3
        for _ in range(count):
            (length,) = struct.unpack_from(">H", record, position)
            yield NalUnit.from_bytes(record[position + 2 : position + 2 + length])
            position += 2 + length


def join_annexb(units: list[NalUnit]) -> bytes:
    """An Annex B byte stream: each NAL unit after a 4-byte start code."""
    return b"".join(b"\x00\x00\x00\x01" + unit.to_bytes() for unit in units)
