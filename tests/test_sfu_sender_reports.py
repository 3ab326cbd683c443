"""Sender reports downstream carry the publisher's RTP/NTP mapping through the
slot's timestamp offset (lip sync), falling back to extrapolation before the
publisher's first SR."""

import struct
import time

from sfu.downtrack import DownTrack
from sfu.forwarder import Router, Slot
from sfu.peers import Subscriber
from sfu.rtcp import iter_packets, parse_sr


def packet(seq: int, ts: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, seq, ts, ssrc) + bytes(80)


async def test_sr_translates_the_publishers_mapping():
    router = Router()
    src = router.add_source(ssrc=42, kind="audio", session_id="p", stream_type="main", resolution_id=None,
                            codec="opus", clock_rate=48000, request_keyframe_upstream=lambda s: None,
                            request_nack_upstream=lambda s, q: None)
    slot = Slot(kind="audio", mid="0", ssrc=7)
    slot.downtrack = DownTrack(7, 111, 48000, False, initial_ts=1_000_000)
    sent = []
    slot.send = sent.append
    router.attach(slot, src)
    router.on_rtp(packet(1, 500_000, 42))
    router.on_rtp(packet(2, 500_960, 42))
    sub = Subscriber("s", router)
    try:
        # Before the publisher's SR: extrapolated from the last forwarded packet.
        first = parse_sr(sub._sender_report(slot), 0, 28)
        assert abs(first.rtp_timestamp - slot.downtrack.last_out_ts) < 48000 * 0.05
        # The publisher says: RTP 600_000 is "now" on its clock.
        src.sr = (time.time(), 600_000)
        sr_bytes = sub._sender_report(slot)
        [(pt, _, off, length)] = list(iter_packets(sr_bytes))
        sr = parse_sr(sr_bytes, off, length)
        expected = slot.downtrack.out_timestamp(600_000)
        assert sr.ssrc == 7 and sr.packets == 2
        assert 0 <= (sr.rtp_timestamp - expected) & 0xFFFFFFFF < 48000 * 0.05  # a few ms elapsed at most
    finally:
        await sub.pc.close()
