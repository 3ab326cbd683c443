"""Retransmission cache of one *source* stream.

One cache per incoming stream, shared by all its subscribers: a NACK from any
subscriber is mapped back to the source sequence number (``DownTrack.source_for``)
and the cached source packet is rewritten on the way out. A per-subscriber cache
would hold the same bytes once per subscriber (notes/aiortc-sfu.md §5d: 119 MB vs
206 MB RSS for 128 vs 1024 packets per downtrack).

A fixed ring indexed by ``seq & (size - 1)``: ``put`` and ``get`` are constant
time and store only a reference to the packet the receive path already holds.
Each slot remembers the sequence number it holds, so ``get`` never returns a
packet that was overwritten or lost upstream (the slot then holds another number),
and ``get`` only answers for the ``size`` numbers up to the newest packet stored,
so a slot left over from before a wrap or a jump of the sequence numbers is not
returned for a number that merely looks the same.
"""

from __future__ import annotations

from typing import Final

DEFAULT_SIZE: Final = 512
"""About 0.5 s of a 1 Mbit/s video stream at 1200-byte packets, ~10 s of 50 pps audio:
longer than a subscriber's NACK round trip, shorter than a keyframe interval."""


class PacketCache:
    """Ring of the last ``size`` packets of one RTP stream, keyed by 16-bit sequence number.

    ``size`` must be a power of two (so it divides 2^16 and the slot index is a mask).
    Store immutable ``bytes``: the cache keeps the reference, not a copy, so a
    ``bytearray`` or ``memoryview`` that is later reused would change cached packets.
    """

    __slots__ = ("size", "_mask", "_seqs", "_data", "_newest")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size <= 0 or size & (size - 1) or size > 1 << 16:
            raise ValueError(f"cache size must be a power of two between 1 and 65536, got {size}")
        self.size = size
        self._mask = size - 1
        self._seqs: list[int] = [-1] * size
        self._data: list[bytes | None] = [None] * size
        self._newest = -1

    def put(self, seq: int, data: bytes) -> None:
        """Store ``data`` as packet ``seq`` (0..65535), replacing whatever held its slot."""
        i = seq & self._mask
        self._seqs[i] = seq
        self._data[i] = data
        if (seq - self._newest) & 0xFFFF < 0x8000 or self._newest < 0:
            self._newest = seq

    def get(self, seq: int) -> bytes | None:
        """The packet stored as ``seq``, or ``None`` if its slot holds another packet."""
        i = seq & self._mask
        if self._seqs[i] != seq or (self._newest - seq) & 0xFFFF > self._mask:
            return None
        return self._data[i]

    def clear(self) -> None:
        """Forget everything (e.g. the source restarted its sequence numbering)."""
        size = self.size
        self._seqs[:] = [-1] * size
        self._data[:] = [None] * size
        self._newest = -1

    def __len__(self) -> int:
        return sum(1 for s in self._seqs if s >= 0)
