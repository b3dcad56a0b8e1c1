"""Bit-level reading and writing of RBSP data (H.265 clause 7.2): fixed-width fields, Exp-Golomb
codes, and the emulation prevention bytes that keep start codes out of NAL unit payloads."""

from __future__ import annotations

import re


class BitstreamError(ValueError):
    """The bits do not follow the syntax (truncated, or a value out of range)."""


class BitReader:
    """Reads an RBSP (emulation prevention already removed) most significant bit first."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.position = 0  # in bits

    @property
    def bits_left(self) -> int:
        return len(self.data) * 8 - self.position

    def u(self, count: int) -> int:
        """An unsigned integer of `count` bits (u(n))."""
        if count == 0:
            return 0
        if count > self.bits_left:
            raise BitstreamError(f"read past the end ({count} bits wanted, {self.bits_left} left)")
        first, last = self.position // 8, (self.position + count - 1) // 8
        chunk = int.from_bytes(self.data[first : last + 1], "big")
        shift = (last + 1) * 8 - (self.position + count)
        self.position += count
        return (chunk >> shift) & ((1 << count) - 1)

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self) -> int:
        """An unsigned Exp-Golomb code (ue(v))."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 32:
                raise BitstreamError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """A signed Exp-Golomb code (se(v)): 1, -1, 2, -2, ... for 1, 2, 3, 4, ..."""
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)

    def byte_aligned(self) -> bool:
        return self.position % 8 == 0

    def payload_end(self) -> int:
        """Bit position of rbsp_stop_one_bit: the last set bit of the data (trailing zero bytes,
        such as cabac_zero_words, excluded)."""
        end = len(self.data)
        while end and self.data[end - 1] == 0:
            end -= 1
        if not end:
            raise BitstreamError("no rbsp_stop_one_bit")
        last = self.data[end - 1]
        return end * 8 - ((last & -last).bit_length())


class BitWriter:
    """Builds an RBSP most significant bit first."""

    def __init__(self) -> None:
        self._value = 0
        self._count = 0

    @property
    def position(self) -> int:
        return self._count

    def u(self, count: int, value: int) -> None:
        if value < 0 or value >> count:
            raise BitstreamError(f"{value} does not fit in {count} bits")
        self._value = (self._value << count) | value
        self._count += count

    def flag(self, value: bool | int) -> None:
        self.u(1, 1 if value else 0)

    def ue(self, value: int) -> None:
        if value < 0:
            raise BitstreamError(f"ue(v) cannot hold {value}")
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)  # bit_length-1 zeros, then the code itself

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_with(self, bit: int) -> None:
        while self._count % 8:
            self.u(1, bit)

    def trailing_bits(self) -> None:
        """rbsp_trailing_bits (or a slice header's byte_alignment): a one, then zeros to a byte."""
        self.u(1, 1)
        self.align_with(0)

    def to_bytes(self) -> bytes:
        if self._count % 8:
            raise BitstreamError("RBSP is not byte aligned")
        return self._value.to_bytes(self._count // 8, "big")


class BitCopier:
    """Reads syntax elements from one RBSP and writes them unchanged to another, so a structure is
    re-emitted field by field and only the fields meant to change are given new values."""

    def __init__(self, reader: BitReader, writer: BitWriter):
        self.reader = reader
        self.writer = writer

    def u(self, count: int) -> int:
        value = self.reader.u(count)
        self.writer.u(count, value)
        return value

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self) -> int:
        value = self.reader.ue()
        self.writer.ue(value)
        return value

    def se(self) -> int:
        value = self.reader.se()
        self.writer.se(value)
        return value

    def rest(self) -> None:
        """Copy everything up to rbsp_stop_one_bit, then write fresh trailing bits."""
        end = self.reader.payload_end()
        while self.reader.position < end:
            self.u(min(32, end - self.reader.position))
        self.writer.trailing_bits()


_EMULATED = re.compile(b"\x00\x00(?=[\x00-\x03])")


def remove_emulation_prevention(payload: bytes) -> bytes:
    """EBSP -> RBSP: drop each 0x03 that follows two zero bytes (the count of zeros restarts after
    it, which is what a left-to-right, non-overlapping replace does)."""
    return bytes(payload).replace(b"\x00\x00\x03", b"\x00\x00")


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """RBSP -> EBSP: insert 0x03 wherever two zero bytes are followed by a byte of 0-3, and after
    a final zero byte (cabac_zero_words), which a following start code would otherwise absorb."""
    escaped = _EMULATED.sub(b"\x00\x00\x03", bytes(rbsp))
    return escaped + b"\x03" if escaped.endswith(b"\x00") else escaped
