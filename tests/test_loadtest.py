"""The load tester (issue 7): the smoke scenario end to end against a real server
with one SFU worker, and the pieces its measurements rest on. Performance is
reported by the tool, never asserted here."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time
from html.parser import HTMLParser

import av
import numpy as np
import pytest

from loadtest.media import AudioSpec, Layer, encode_audio, encode_video, opus_with_padding, read_trailer, trailer
from loadtest.scenario import SCENARIO_DIR, load, plan
from loadtest.stats import Histogram, StreamStats


async def test_smoke_scenario_end_to_end(media, tmp_path):
    k = media
    out = tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "--scenario", "smoke", "--duration", "8", "--server", k.url,
        "--ak", k.ak, "--sk", k.sk, "--project-id", k.project_id, "--out", str(out),
        "--media-cache", str(tmp_path / "cache"), "--fail-on-errors",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 150)
    text = stdout.decode() + stderr.decode()
    assert proc.returncode == 0, text[-4000:]
    assert "clients" in stderr.decode()  # the live progress lines

    result = json.loads((out / "result.json").read_text())
    run = result["runs"][0]
    assert run["target"] == "kindling" and run["scenario"]["name"] == "smoke"
    assert run["clients"] == {"planned": 4, "joined": 4, "join_failed": 0, "left": 4, "publishers": 2,
                              "subscribers": 2}
    assert run["errors"] == {}
    assert len(run["subscribers"]) == 2
    for sub in run["subscribers"]:
        # each subscriber takes audio + video of both publishers: four streams, all with media
        assert sub["streams"] == 4 and sub["streams_with_media"] == 4, sub
        assert sub["audio_packets"] > 0 and sub["video_packets"] > 0
    m = run["media"]
    assert m["received_packets"] > 0 and m["sent_packets"] > 0
    assert m["decoded_frames"] > 0 and m["decode_errors"] == 0  # one subscriber decodes: the media is real
    assert run["latency"]["one_way_audio"]["count"] > 0 and run["latency"]["one_way_video"]["count"] > 0
    assert run["latency"]["join_request"]["count"] == 4
    assert run["series"]["t"] and run["series"]["recv_pps"]
    assert (out / "agent-kindling-0.log").exists()
    # the app the run created through the REST API was deleted afterwards
    count, _ = await k.services.apps.list(k.project_id, None, 0, 100)
    assert count == 0

    html = (out / "report.html").read_text()
    parser = _Tags()
    parser.feed(html)
    assert parser.counts.get("svg", 0) >= 6 and parser.counts.get("table", 0) >= 3
    assert "one-way audio" in html and "Kindling load test" in html


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1


def _decode(codec: str, packets: list[bytes], **kw) -> list[np.ndarray]:
    ctx = av.CodecContext.create(codec, "r")
    for name, value in kw.items():
        setattr(ctx, name, value)
    return [f.to_ndarray() for p in packets for f in ctx.decode(av.Packet(p))]


def test_vp8_trailer_is_ignored_by_the_decoder():
    frames = encode_video(Layer("t", 160, 90, 15, 80), seconds=1.0)
    stamped = [f + trailer() for f in frames]
    plain, marked = _decode("vp8", frames), _decode("vp8", stamped)
    assert len(plain) == len(marked) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(plain, marked, strict=True))
    assert read_trailer(stamped[3]) is not None and abs(read_trailer(stamped[3]) - time.time_ns()) < 60e9


@pytest.mark.parametrize("ptime", [20, 40, 60])
def test_opus_padding_carries_the_timestamp_and_decodes_identically(ptime):
    packets = encode_audio(AudioSpec(32, ptime), seconds=1.0)
    stamp = trailer(123456789)
    padded = [opus_with_padding(p, stamp) for p in packets]
    assert all(read_trailer(p) == 123456789 for p in padded)
    kw = {"sample_rate": 48000, "layout": "stereo"}
    plain, marked = _decode("opus", packets, **kw), _decode("opus", padded, **kw)
    assert len(plain) == len(marked) > 0
    assert all(np.array_equal(a, b) for a, b in zip(plain, marked, strict=True))


def test_histogram_percentiles_and_merge():
    a, b = Histogram(), Histogram()
    for v in range(1, 1001):
        (a if v % 2 else b).add(v * 1000.0)  # 1..1000 ms in µs
    a.merge(b.to_dict())
    s = a.summary_ms()
    assert s["count"] == 1000
    assert s["p50"] == pytest.approx(500, rel=0.02) and s["p99"] == pytest.approx(990, rel=0.02)
    assert s["max"] == 1000


def test_stream_stats_loss_jitter_freezes_and_latency():
    lat, tick = Histogram(), Histogram()
    st = StreamStats("s", "p", "video", "low", 90000, lat, tick)
    payload = b"\x10" * 100 + trailer(time.time_ns() - 5_000_000)  # sent 5 ms ago
    for seq in list(range(65530, 65536)) + [0, 2, 3]:  # wraps; seq 1 lost
        st.on_packet(seq, seq * 3000, 1, payload, 12)
    assert st.packets == 9 and st.expected == 10 and st.lost == 1
    assert lat.n == 9 and 4.0 < lat.summary_ms()["p50"] < 1000
    d = st.to_dict()
    assert d["loss_pct"] == 10.0 and d["frames"] == 9


def test_bundled_scenarios_load_and_expand():
    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))
    assert {"smoke", "conference", "webinar", "max-room", "churn"} <= set(names)
    for name in names:
        sc = load(name)
        specs = plan(sc, "x")
        assert specs and len({(s.room, s.user) for s in specs}) == len(specs)
        assert [s.start_s for s in specs] == sorted(s.start_s for s in specs)
    conf = plan(load("conference"), "x")
    subs = [s for s in conf if s.subscribe]
    assert len(subs) == 10 and all(len(s.targets) == 4 for s in subs)
    assert {t.user for s in subs for t in s.targets} == {f"p{i}" for i in range(10)}  # everyone is watched
    churn = load("churn")
    specs = plan(churn, "x")
    assert all(s.leave_s is not None and abs(s.leave_s - s.start_s - churn.churn["session_s"]) < 1e-9
               for s in specs)
    assert len(specs) / (churn.duration_s - churn.churn["session_s"]) == pytest.approx(churn.join_rate, rel=0.05)
    for room in {s.room for s in specs}:  # every room has publishers and subscribers
        assert {s.publish for s in specs if s.room == room} == {True, False}
    big = load("max-room")
    assert big.top_n and big.publishers == 500 and big.subscriber_role == "player"


def test_trailer_layout():
    t = trailer(1)
    assert len(t) == 12 and t[:4] == b"KLT0" and struct.unpack("!Q", t[4:])[0] == 1


async def test_probe_reads_process_and_worker_metrics_from_the_server():
    from loadtest.probe import ServerProbe, parse_prometheus

    text = ('# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total {v}\n'
            'process_resident_memory_bytes 1.5e+08\nkindling_participants 7.0\n'
            'kindling_worker_cpu_seconds_total{{worker="w1"}} {w}\n'
            'kindling_worker_resident_memory_bytes{{worker="w1"}} 2e+08\n'
            'kindling_signalling_requests_total{{type="join",code="0"}} 3.0\n')
    assert parse_prometheus(text.format(v=1, w=2))["kindling_participants"] == [({}, 7.0)]

    class FakeHttp:
        def __init__(self) -> None:
            self.n = 0

        def get(self, url):
            self.n += 1
            body = text.format(v=10 + self.n * 0.5, w=20 + self.n * 0.25)

            class Resp:
                status = 200

                async def text(self):
                    return body

                async def __aenter__(self):
                    return self

                async def __aexit__(self, *exc):
                    return False

            return Resp()

    probe = ServerProbe("http://x", "http://x/metrics", None)
    http = FakeHttp()
    t0 = time.time()
    for _ in range(3):
        await probe.sample(http, t0)
        await asyncio.sleep(0.3)
    d = probe.to_dict()
    assert d["has_process_metrics"] is True
    assert d["metrics"]["participants"] == [7.0, 7.0, 7.0]
    assert d["metrics"]["rss_mb"][-1] == 150.0 and d["metrics"]["worker w1 rss_mb"][-1] == 200.0
    assert d["metrics"]["cpu"][0] is None and d["metrics"]["cpu"][-1] > 0
    assert d["metrics"]["worker w1 cpu"][-1] > 0
    assert d["signalling_outcomes"] == {"join:0": 3.0}
