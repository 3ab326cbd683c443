"""Fails loudly when an aiortc/aioice upgrade moves the private names the SFU
relies on (sfu/hooks.py). aiortc is pinned; this is the alarm for bumping it."""

import asyncio
import inspect
from importlib.metadata import version

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu import hooks


def test_pinned_versions():
    assert version("aiortc") == "1.16.0"
    assert version("aioice") == "0.13.0"


def test_private_names_exist():
    missing = []
    for owner, (obj, names) in hooks.PRIVATE_NAMES.items():
        for name in names:
            if obj is RTCDtlsTransport and name in ("_rx_srtp", "_tx_srtp", "transport"):
                continue  # instance attributes, checked below
            if not hasattr(obj, name):
                missing.append(f"{owner}.{name}")
    assert not missing, f"aiortc private API changed: {missing}"


def test_private_instance_fields_exist():
    async def check():
        pc = RTCPeerConnection()
        t = pc.addTransceiver("video", direction="sendonly")
        try:
            for field in hooks.RECEIVER_FIELDS:
                assert hasattr(t.receiver, field), field
            for field in hooks.SENDER_FIELDS:
                assert hasattr(t.sender, field), field
            dtls = t.sender.transport
            for field in ("_rx_srtp", "_tx_srtp", "transport", "_rtp_router"):
                assert hasattr(dtls, field), field
            assert hasattr(dtls.transport, "_connection")
            assert hasattr(dtls.transport._connection, "_nominated")
        finally:
            await pc.close()

    asyncio.run(check())


def test_hooked_signatures_match():
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from aiortc.rtcrtpsender import RTCRtpSender

    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self", "packet", "arrival_time_ms"]
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self", "data", "arrival_time_ms"]
    assert list(inspect.signature(RTCRtpSender._run_rtp).parameters) == ["self", "codec"]
    assert list(inspect.signature(RTCRtpSender._handle_rtcp_packet).parameters) == ["self", "packet"]
