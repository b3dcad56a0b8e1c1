"""The colour description a video carries (FFmpeg's AVColor* codes, as in the H.264/HEVC VUI), read
from the source and written on the output, so HDR (PQ/HLG, BT.2020) and SD (BT.601) clips keep
their look. Pixels go through the warp as the source's own RGB code values: only the YUV matrix and
range take part in the conversion; primaries and transfer are tags that pass through untouched."""

from __future__ import annotations

from dataclasses import dataclass

BT709 = 1
UNSPECIFIED = 2
LIMITED, FULL = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG
# YUV matrices swscale converts with (AVCOL_SPC_*): BT.709, BT.470BG, SMPTE 170M (both BT.601),
# SMPTE 240M, BT.2020 non-constant luminance. Others are written as BT.709.
SWSCALE_MATRICES = {1, 5, 6, 7, 9}
TRANSFER_NAMES = {16: "PQ", 18: "HLG"}
BT601_PRIMARIES = (5, 6)  # BT.470BG (PAL), SMPTE 170M (NTSC)


@dataclass(frozen=True)
class Colour:
    primaries: int = BT709
    transfer: int = BT709
    matrix: int = BT709
    range: int = LIMITED

    @classmethod
    def of(cls, primaries: int, transfer: int, matrix: int, colour_range: int) -> Colour:
        """What a stream says, unspecified fields read as HD video's usual BT.709, limited range
        (what players assume); a matrix swscale lacks (or RGB) is replaced by BT.709."""
        return cls(
            primaries=primaries if primaries not in (0, UNSPECIFIED) else BT709,
            transfer=transfer if transfer not in (0, UNSPECIFIED) else BT709,
            matrix=matrix if matrix in SWSCALE_MATRICES else BT709,
            range=FULL if colour_range == FULL else LIMITED,
        )

    @property
    def swscale_matrix(self) -> int:
        """The matrix as swscale numbers it (SWS_CS_*): both BT.601 codes are its 5."""
        return 5 if self.matrix == 6 else self.matrix

    @property
    def png_cicp(self) -> bytes | None:
        """The data of a PNG cICP chunk for frames of this video (its primaries and transfer; RGB,
        full range) when it is HDR or wide gamut, whose code values read as sRGB look wrong; None for
        BT.709 and BT.601 video, which viewers show as sRGB anyway."""
        if self.hdr is None and self.primaries in (BT709, *BT601_PRIMARIES):
            return None
        return bytes((self.primaries, self.transfer, 0, 1))

    @property
    def hdr(self) -> str | None:
        """PQ or HLG for an HDR transfer, else None."""
        return TRANSFER_NAMES.get(self.transfer)
