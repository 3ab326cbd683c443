"""Many real WebSocket clients at once: R-CAP-01 at full scale (600 clients into
one room: exactly 500 senders, the 501st refused with 90100246, players unlimited)."""

import asyncio

from kindling_sdk import RtcError
from tests.conftest import sign


async def test_R_CAP_01_02_600_clients_500_joiners_1_refused_99_players(kindling):
    s = kindling.settings
    s.heartbeat_interval_s, s.disconnect_after_s, s.keepalive_s = 10.0, 60.0, 60.0
    app_id, key = await kindling.app()
    gate = asyncio.Semaphore(100)  # bounded concurrency of connection set-up, all in flight together

    async def join(i: int, role: int):
        user = f"{'j' if role == 0 else 'p'}{i}"
        client = kindling.client(app_id)
        ctime, sig = sign(key, app_id, "big", user)
        async with gate:
            try:
                await client.join("big", user_id=user, ctime=ctime, signature=sig, role=role)
                return "ok"
            except RtcError as exc:
                return exc.code

    results = await asyncio.gather(*[join(i, 0) for i in range(501)], *[join(i, 2) for i in range(99)])
    joiners, players = results[:501], results[501:]
    assert joiners.count("ok") == 500
    assert [r for r in joiners if r != "ok"] == [90100246]
    assert players == ["ok"] * 99
    room = kindling.services.rooms.rooms[(app_id, "big")]
    assert len(room.members) == 599
    assert room.sender_count() == 500
    # A sender's slot frees when one leaves, and the next joiner gets it.
    leaver = next(c for c in kindling.clients if c.role == 0 and c.session_id)
    await leaver.leave()
    assert await join(1000, 0) == "ok"
    assert await join(1001, 0) == 90100246
