"""Every use of aiortc/aioice private API, in one place.

aiortc (pinned to 1.16.0 in pyproject.toml) has no raw-RTP API: its receiver
decodes everything and its sender encodes from tracks (notes/aiortc-sfu.md §1.3).
Kindling keeps aiortc for ICE, DTLS, SRTP keys, SDP and RTCP parsing, and takes
over the packets:

* ``ForwardingReceiver`` replaces ``RTCRtpReceiver``: no decoder thread, no stock
  RTCP loop; sender reports from the publisher go to a callback.
* ``ForwardingSender`` replaces ``RTCRtpSender``: never encodes; its RTCP loop
  sends sender reports from what the worker forwarded; NACK/PLI/FIR/REMB from the
  subscriber go to callbacks.
* ``tap_ingress`` receives decrypted RTP bytes of a publisher's DTLS transport;
  ``tap_socket`` then moves that to the UDP socket itself once ICE has nominated
  a pair (decrypt inline, no asyncio queue or task hop per packet).
* ``egress`` gives a synchronous ``send(bytes)`` that protects and writes straight
  to the nominated UDP pair (no task switch, no await per packet).

``PRIVATE_NAMES`` lists what this module touches; tests/test_aiortc_internals.py
fails loudly if an aiortc upgrade renames any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc.rtcpeerconnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

PRIVATE_NAMES: dict[str, tuple[object, list[str]]] = {
    "RTCRtpReceiver": (
        RTCRtpReceiver,
        ["receive", "stop", "_handle_rtp_packet", "_handle_rtcp_packet", "_handle_disconnect", "_send_rtcp_pli",
         "_set_rtcp_ssrc"],
    ),
    "RTCRtpSender": (RTCRtpSender, ["_run_rtp", "_run_rtcp", "_handle_rtcp_packet", "send", "stop"]),
    "RTCDtlsTransport": (RTCDtlsTransport, ["_handle_rtp_data", "_send_rtp", "_rx_srtp", "_tx_srtp", "transport"]),
    "aiortc.rtcpeerconnection": (aiortc.rtcpeerconnection, ["RTCRtpReceiver", "RTCRtpSender"]),
    "aioice.ice": (aioice.ice, ["get_host_addresses"]),
}
# Name-mangled attributes set in __init__ (checked on instances by the test).
RECEIVER_FIELDS = ["_RTCRtpReceiver__codecs", "_RTCRtpReceiver__started", "_RTCRtpReceiver__kind"]
SENDER_FIELDS = [
    "_ssrc",
    "_RTCRtpSender__rtp_started", "_RTCRtpSender__rtp_exited", "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited", "_RTCRtpSender__started",
]


class ForwardingReceiver(RTCRtpReceiver):
    """A receiver that never decodes (the worker reads the packets itself)."""

    on_sender_report: Callable[[int, int, int], None] | None = None

    async def receive(self, parameters: Any) -> None:
        if not self._RTCRtpReceiver__started:
            for codec in parameters.codecs:
                self._RTCRtpReceiver__codecs[codec.payloadType] = codec
            self.transport._register_rtp_receiver(self, parameters)
            self._RTCRtpReceiver__started = True

    async def stop(self) -> None:
        if self._RTCRtpReceiver__started:
            self.transport._unregister_rtp_receiver(self)
            self._RTCRtpReceiver__started = False

    def _handle_disconnect(self) -> None:
        pass

    async def _handle_rtp_packet(self, packet: Any, arrival_time_ms: int) -> None:
        # Only reached if the ingress tap is missing: never decode.
        return None

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and self.on_sender_report is not None:
            info = packet.sender_info
            self.on_sender_report(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)


class ForwardingSender(RTCRtpSender):
    """A sender fed by the worker's forwarding path instead of a track."""

    payload_type: int | None = None
    clock_rate: int = 90000
    on_nack: Callable[[list[int]], None] | None = None
    on_keyframe_request: Callable[[], None] | None = None
    on_remb: Callable[[int], None] | None = None
    on_report: Callable[[Any], None] | None = None
    sender_report: Callable[[], bytes | None] | None = None  # builds an SR from forwarded counters

    async def _run_rtp(self, codec: Any) -> None:
        self.payload_type = codec.payloadType
        self.clock_rate = codec.clockRate
        self._RTCRtpSender__rtp_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            self._RTCRtpSender__rtp_exited.set()

    async def _run_rtcp(self) -> None:
        self._RTCRtpSender__rtcp_started.set()
        try:
            while True:
                await asyncio.sleep(0.5 + random.random())
                build = self.sender_report
                packet = build() if build is not None else None
                if packet:
                    with contextlib.suppress(ConnectionError):
                        await self.transport._send_rtp(packet)
        except asyncio.CancelledError:
            pass
        finally:
            self._RTCRtpSender__rtcp_exited.set()

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if self.on_nack is not None:
                # aiortc's parser forgets to wrap at 65536 (rtp.py RtcpRtpfbPacket.parse).
                self.on_nack([seq & 0xFFFF for seq in packet.lost])
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if self.on_keyframe_request is not None:
                self.on_keyframe_request()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self._ssrc in ssrcs and self.on_remb is not None:
                self.on_remb(bitrate)
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)) and self.on_report is not None:
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    self.on_report(report)


def install() -> None:
    """Make every RTCPeerConnection of this process use the forwarding classes.
    Only SFU worker processes call this."""
    aiortc.rtcpeerconnection.RTCRtpReceiver = ForwardingReceiver
    aiortc.rtcpeerconnection.RTCRtpSender = ForwardingSender


def use_host_addresses(addresses: list[str]) -> None:
    """Gather ICE host candidates only on these addresses. aioice skips 127.0.0.1
    by default; tests and single-host setups announce loopback explicitly."""
    fixed = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(fixed)


def tap_ingress(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> None:
    """Deliver every decrypted RTP packet of this transport to ``handler`` (bytes,
    synchronously); aiortc's own routing, jitter buffers and decoders never see them."""

    async def _handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        handler(data)

    dtls._handle_rtp_data = _handle_rtp_data  # type: ignore[method-assign]


def tap_socket(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> bool:
    """The fast ingress: take SRTP straight off the nominated UDP socket, decrypt and
    hand it to ``handler`` inside ``datagram_received``, with no queue, no task
    switch and no await (notes/aiortc-sfu.md §1.4 "ingress, fastest"). STUN, DTLS
    and SRTCP still go to aioice/aiortc. Returns False if the transport is not
    connected yet (``tap_ingress`` keeps delivering meanwhile)."""
    srtp = dtls._rx_srtp
    connection = getattr(dtls.transport, "_connection", None)
    pair = connection._nominated.get(1) if connection is not None else None
    if srtp is None or pair is None:
        return False
    protocol = pair.protocol
    original = protocol.datagram_received
    if getattr(original, "kindling_tap", False):
        return True
    unprotect = srtp.unprotect

    def datagram_received(data: bytes, addr: Any) -> None:
        # RTP: version 2 (first byte 128..191) and not an RTCP packet type (192..208).
        if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 209:
            try:
                plain = unprotect(data)
            except Exception:  # replayed, unauthenticated or garbage: drop as libsrtp would
                return
            handler(plain)
            return
        original(data, addr)

    datagram_received.kindling_tap = True  # type: ignore[attr-defined]
    protocol.datagram_received = datagram_received  # type: ignore[method-assign]
    return True


def egress(dtls: RTCDtlsTransport) -> Callable[[bytes], None] | None:
    """A synchronous sender for RTP/RTCP bytes on a connected transport: SRTP protect
    and one ``sendto`` on the nominated candidate pair."""
    srtp = dtls._tx_srtp
    connection = getattr(dtls.transport, "_connection", None)
    pair = connection._nominated.get(1) if connection is not None else None
    if srtp is None or pair is None or pair.protocol.transport is None:
        return None
    sendto = pair.protocol.transport.sendto
    protect = srtp.protect
    addr = pair.remote_addr

    def send(data: bytes) -> None:
        try:
            sendto(protect(data), addr)
        except Exception:  # a closed socket or a full buffer drops the packet, as UDP would
            pass

    return send
