"""Top-N audio: who are the loudest speakers of a room, without decoding.

The forwarding path adds each audio packet's RFC 6464 level to its source's
accumulator (one integer add). Once per tick this module turns the accumulators
into a smoothed loudness per source and keeps a ranked set of the loudest with
hysteresis, so two speakers of similar loudness do not make listeners' slots
flap. One ranking per room per tick serves every listener: each takes the first
N of the set that are not its own voice (so the set holds N + 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Ranked(Protocol):
    user_id: str
    level_sum: int
    level_n: int
    loudness: float
    last_packet_at: float


SILENCE = 127  # RFC 6464: level 127 = -127 dBov


class AudioRanking:
    def __init__(self, n: int = 3, alpha: float = 0.5, margin: float = 3.0, hold_s: float = 1.0,
                 silent_after_s: float = 1.0) -> None:
        self.n = n
        self.alpha = alpha  # EWMA weight of the newest window
        self.margin = margin  # dB a challenger must beat the weakest member by
        self.hold_s = hold_s  # a member stays at least this long
        self.silent_after_s = silent_after_s
        self.members: list[Ranked] = []
        self._since: dict[int, float] = {}

    def tick(self, sources: Iterable[Ranked], now: float) -> list[Ranked]:
        """Fold the accumulated levels in and return the ranked set (loudest first,
        up to n + 1 sources)."""
        live = []
        for src in sources:
            if src.level_n:
                # Loudness in dB above silence for this window: 127 - mean(level).
                window = SILENCE - src.level_sum / src.level_n
                src.loudness = self.alpha * window + (1 - self.alpha) * src.loudness
                src.level_sum = 0
                src.level_n = 0
            elif now - src.last_packet_at > self.silent_after_s:
                src.loudness *= 1 - self.alpha  # no packets: fades out
            if now - src.last_packet_at <= self.silent_after_s:
                live.append(src)
        size = self.n + 1
        members = [m for m in self.members if m in live]
        candidates = sorted((s for s in live if s not in members), key=lambda s: s.loudness, reverse=True)
        for challenger in candidates:
            if challenger.loudness <= 0.5:
                break  # silence is never "a speaker"
            if len(members) < size:
                members.append(challenger)
                self._since[id(challenger)] = now
                continue
            weakest = min(members, key=lambda s: s.loudness)
            if (challenger.loudness > weakest.loudness + self.margin
                    and now - self._since.get(id(weakest), 0.0) >= self.hold_s):
                members.remove(weakest)
                self._since.pop(id(weakest), None)
                members.append(challenger)
                self._since[id(challenger)] = now
        members.sort(key=lambda s: s.loudness, reverse=True)
        self.members = members
        return members

    def for_listener(self, user_id: str) -> list[Ranked]:
        return [m for m in self.members if m.user_id != user_id][: self.n]

    @staticmethod
    def volume(src: Ranked) -> int:
        """0..100 for ``volume-indicator`` (127 dB range mapped linearly)."""
        return max(0, min(100, round(src.loudness * 100 / SILENCE)))
