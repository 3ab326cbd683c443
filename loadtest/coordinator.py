"""The coordinator of a load-test run: prepares the target (an app on a Kindling
server, or a naive relay it starts), expands the scenario into clients, spreads
them over agent processes, starts them together, prints a progress line a second,
samples the server, and writes the JSON result and the HTML report.

Every phase is bounded: agents get a hard deadline, and whatever has not exited by
then is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from loadtest import probe as probe_mod
from loadtest.media import audio_loop, video_loop
from loadtest.scenario import ClientSpec, Scenario, plan, shard
from loadtest.stats import Histogram, percentiles

READY_TIMEOUT_S = 90.0
START_MARGIN_S = 1.0
LEAVE_GRACE_S = 25.0


@dataclass
class RunOptions:
    scenario: Scenario
    target: str = "kindling"  # or "naive"
    server: str = "http://127.0.0.1:8080"
    app_id: str | None = None
    app_key: str | None = None
    ak: str | None = None
    sk: str | None = None
    project_id: str | None = None
    keep_app: bool = False
    processes: int = 1
    publisher_processes: int = 0  # > 0: that many of the processes run only the publishers
    shard_index: int = 0
    shard_count: int = 1
    run_id: str | None = None
    out_dir: Path = Path("loadtest-results")
    media_cache: Path | None = None
    local_address: str = "127.0.0.1"
    server_pid: int | None = None
    proc_sampling: bool = True
    quiet: bool = False
    command: str = ""
    start_at: float | None = None  # common wall-clock start (several hosts)


def machine() -> dict:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    mem = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    return {"platform": platform.platform(), "cpu": model, "cpus": os.cpu_count(), "memory_gib": mem,
            "python": sys.version.split()[0], "hostname": platform.node(),
            "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


# ---------------------------------------------------------------------- target preparation


async def create_app(server: str, ak: str, sk: str, project_id: str, name: str) -> tuple[str, str]:
    """Create an app through the REST API: Huawei's official SDK when installed
    (huaweicloudsdkcloudrtc), else requests signed the same way (AK/SK)."""
    try:
        from huaweicloudsdkcloudrtc.v2 import AppReq, CloudRTCClient, CreateAppRequest, ShowAppRequest
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.http.http_config import HttpConfig
    except ImportError:
        return await _create_app_signed(server, ak, sk, project_id, name)

    def work() -> tuple[str, str]:
        config = HttpConfig.get_default_config()
        config.retry_times = 0
        client = (CloudRTCClient.new_builder().with_http_config(config)
                  .with_credentials(BasicCredentials(ak, sk, project_id)).with_endpoints([server]).build())
        created = client.create_app(CreateAppRequest(body=AppReq(app_name=name)))
        shown = client.show_app(ShowAppRequest(app_id=created.app_id))
        return created.app_id, shown.authentication.app_key

    return await asyncio.to_thread(work)


async def delete_app(server: str, ak: str, sk: str, project_id: str, app_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        status, body = await _signed(http, server, ak, sk, project_id, "DELETE", f"/v2/apps/{app_id}")
        if status not in (204, 404):
            raise RuntimeError(f"deleting app {app_id}: HTTP {status} {body}")


async def _signed(http: aiohttp.ClientSession, server: str, ak: str, sk: str, project_id: str, method: str,
                  path: str, body: dict | None = None) -> tuple[int, object]:
    from urllib.parse import urlsplit

    from control.auth import aksk

    raw = json.dumps(body).encode() if body is not None else b""
    headers = {
        "Content-Type": "application/json",
        "X-Sdk-Date": datetime.now(UTC).strftime(aksk.DATE_FORMAT),
        "Host": urlsplit(server).netloc,
        "X-Project-Id": project_id,
    }
    names = tuple(sorted(h.lower() for h in headers))
    lower = {h.lower(): v for h, v in headers.items()}
    sig = aksk.sign(sk, aksk.string_to_sign(method, path, "", lower, names, raw))
    headers["Authorization"] = f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(names)}, Signature={sig}"
    async with http.request(method, server.rstrip("/") + path, data=raw, headers=headers,
                            skip_auto_headers={"Content-Type"}) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text) if text else None
        except ValueError:
            return resp.status, text


async def _create_app_signed(server: str, ak: str, sk: str, project_id: str, name: str) -> tuple[str, str]:
    async with aiohttp.ClientSession() as http:
        status, body = await _signed(http, server, ak, sk, project_id, "POST", "/v2/apps", {"app_name": name})
        if status != 201 or not isinstance(body, dict):
            raise RuntimeError(f"creating an app: HTTP {status} {body}")
        app_id = body["app_id"]
        status, shown = await _signed(http, server, ak, sk, project_id, "GET", f"/v2/apps/{app_id}")
        if status != 200 or not isinstance(shown, dict):
            raise RuntimeError(f"reading app {app_id}: HTTP {status} {shown}")
        return app_id, shown["authentication"]["app_key"]


async def start_naive_relay(local_address: str, log_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with log_path.open("wb") as log:  # noqa: ASYNC230 - local file
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadtest.naive_relay", "--port", str(port), "--media-host", local_address,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return proc, url
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("the naive relay did not start")


# ---------------------------------------------------------------------- agents


@dataclass
class AgentProc:
    index: int
    proc: asyncio.subprocess.Process
    specs: list[ClientSpec]
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    counters: dict = field(default_factory=dict)
    tick_t: float = 0.0
    prev: tuple[float, dict] | None = None  # the tick before (time, counters): rates per agent
    final: dict | None = None
    errors: list[str] = field(default_factory=list)
    pid: int | None = None


class Run:
    """One run against one target."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.sc = opts.scenario
        self.agents: list[AgentProc] = []
        self.tick_lat = {"audio": Histogram(), "video": Histogram()}
        self.series: dict[str, list] = {}
        self.t0 = 0.0
        self.relay: asyncio.subprocess.Process | None = None
        self.probe: probe_mod.ServerProbe | None = None
        self.notes: list[str] = []
        self.created_app: str | None = None

    # -- set-up

    async def prepare(self) -> dict:
        o = self.opts
        if o.target == "naive":
            if o.server in ("", "auto"):
                o.out_dir.mkdir(parents=True, exist_ok=True)
                self.relay, o.server = await start_naive_relay(o.local_address, o.out_dir / "naive-relay.log")
            return {"server": o.server}
        if not (o.app_id and o.app_key):
            if not (o.ak and o.sk and o.project_id):
                raise SystemExit("kindling loadtest: give --app-id/--app-key, or --ak/--sk/--project-id")
            o.app_id, o.app_key = await create_app(o.server, o.ak, o.sk, o.project_id,
                                                   f"loadtest-{self.sc.name}-{uuid.uuid4().hex[:6]}")
            self.created_app = o.app_id
        return {"server": o.server, "app_id": o.app_id, "app_key": o.app_key}

    async def cleanup(self) -> None:
        o = self.opts
        if self.created_app and not o.keep_app and o.ak and o.sk and o.project_id:
            try:
                await delete_app(o.server, o.ak, o.sk, o.project_id, self.created_app)
            except Exception as exc:  # the results are written already; say so and go on
                self.notes.append(f"could not delete app {self.created_app}: {exc}")
        if self.relay is not None and self.relay.returncode is None:
            self.relay.terminate()
            try:
                await asyncio.wait_for(self.relay.wait(), 10)
            except TimeoutError:
                self.relay.kill()

    async def spawn_agents(self, target: dict, specs: list[ClientSpec], log_dir: Path) -> None:
        o = self.opts
        n = max(1, min(o.processes, len(specs) or 1))
        pubs_only = o.publisher_processes if 0 < o.publisher_processes < n else 0
        pub_specs = [s for s in specs if s.publish] if pubs_only else []
        rest = [s for s in specs if not s.publish] if pubs_only else specs
        first = max(time.time() + READY_TIMEOUT_S, o.start_at or 0.0)
        deadline = first + START_MARGIN_S + self.sc.duration_s + LEAVE_GRACE_S
        self.deadline = deadline
        for i in range(n):
            if pubs_only:  # publishers on their own processes: a busy subscriber loop cannot starve them
                mine = ([s for k, s in enumerate(pub_specs) if k % pubs_only == i] if i < pubs_only
                        else [s for k, s in enumerate(rest) if k % (n - pubs_only) == i - pubs_only])
            else:
                mine = [s for k, s in enumerate(specs) if k % n == i]
            cfg = {
                "agent": i, "target": o.target, "server": target["server"], "app_id": target.get("app_id"),
                "app_key": target.get("app_key"), "scenario": self.sc.to_dict(), "clients": [s.to_dict() for s in mine],
                "media_cache": str(o.media_cache) if o.media_cache else None, "local_address": o.local_address,
                "deadline": deadline,
            }
            with (log_dir / f"agent-{o.target}-{i}.log").open("wb") as log_file:  # noqa: ASYNC230 - local file
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "loadtest.agent", stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, stderr=log_file, limit=64 * 1024 * 1024,
                )
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(cfg) + "\n").encode())
            await proc.stdin.drain()
            agent = AgentProc(i, proc, mine, pid=proc.pid)
            self.agents.append(agent)
            asyncio.ensure_future(self._read(agent))

    async def _read(self, agent: AgentProc) -> None:
        assert agent.proc.stdout is not None
        try:
            async for raw in agent.proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                kind = msg.get("type")
                if kind == "ready":
                    agent.ready.set()
                elif kind == "tick":
                    if agent.counters:
                        agent.prev = (agent.tick_t, agent.counters)
                    agent.counters, agent.tick_t = msg["c"], float(msg["t"])
                    for k, h in msg.get("lat", {}).items():
                        self.tick_lat[k].merge(h)
                elif kind == "final":
                    agent.final = msg
                elif kind == "error":
                    agent.errors.append(msg.get("message", "?"))
        finally:
            agent.ready.set()
            agent.done.set()

    # -- the run

    async def execute(self) -> dict:
        o, sc = self.opts, self.sc
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        run_id = o.run_id or f"lt{uuid.uuid4().hex[:6]}"
        o.out_dir.mkdir(parents=True, exist_ok=True)
        specs = shard(plan(sc, run_id), o.shard_index, o.shard_count)
        if o.media_cache:  # encode once here, not in every agent
            if sc.audio:
                audio_loop(sc.audio_spec, o.media_cache)
            for layer in sc.video:
                video_loop(layer, o.media_cache)
        target = await self.prepare()
        started = datetime.now(UTC).isoformat()
        try:
            await self.spawn_agents(target, specs, o.out_dir)
            try:
                async with asyncio.timeout(READY_TIMEOUT_S):
                    await asyncio.gather(*(a.ready.wait() for a in self.agents))
            except TimeoutError:
                self.notes.append("not every agent got ready in time")
            self.t0 = max(time.time() + START_MARGIN_S, o.start_at or 0.0)
            if o.start_at and o.start_at > self.deadline - self.sc.duration_s - LEAVE_GRACE_S:
                self.notes.append("--start-at is later than the agents' deadline allows")
            for a in self.agents:
                if a.proc.stdin is not None and a.proc.returncode is None:
                    with contextlib.suppress(ConnectionError):
                        a.proc.stdin.write((json.dumps({"t0": self.t0}) + "\n").encode())
                        await a.proc.stdin.drain()
            self.probe = self._make_probe(target["server"])
            await self._monitor()
        finally:
            for a in self.agents:
                if a.proc.returncode is None:
                    a.proc.kill()
                    await a.proc.wait()
            await self.cleanup()
        return self.result(stamp, started, run_id, specs, target["server"])

    def _make_probe(self, server: str) -> probe_mod.ServerProbe | None:
        o = self.opts
        root = None
        if o.target == "naive" and self.relay is not None:
            root = self.relay.pid
        elif o.server_pid:
            root = o.server_pid
        elif o.proc_sampling and probe_mod.is_local(server):
            from urllib.parse import urlsplit

            port = urlsplit(server).port or 80
            root = probe_mod.listening_pid(port)
            if root is None:
                self.notes.append(f"no local process found listening on port {port}: no /proc sampling")
        if not o.proc_sampling:
            root = None
        exclude = {os.getpid()} | {a.pid for a in self.agents if a.pid}
        metrics = None if o.target == "naive" else server.rstrip("/") + "/metrics"
        return probe_mod.ServerProbe(server, metrics, root, exclude)

    async def _monitor(self) -> None:
        sc = self.sc
        end = self.t0 + sc.duration_s
        hard = min(self.deadline, end + LEAVE_GRACE_S)
        async with aiohttp.ClientSession() as http:
            next_tick = self.t0 + 1.0
            while True:
                now = time.time()
                if all(a.done.is_set() for a in self.agents):
                    break
                if now > hard:
                    self.notes.append("hard deadline reached: agents killed")
                    break
                if next_tick > now:
                    await asyncio.sleep(next_tick - now)
                next_tick += 1.0
                if time.time() < self.t0:
                    continue
                if self.probe is not None:
                    await self.probe.sample(http, self.t0)
                self._tick(time.time(), end)

    def _tick(self, now: float, end: float) -> None:
        c = self._sum_counters()
        s = self.series
        t = round(now - self.t0, 2)
        def rate(key: str, scale: float = 1.0) -> float:
            """Sum over agents of the rate between their last two ticks."""
            total = 0.0
            for a in self.agents:
                if a.prev is not None and a.tick_t > a.prev[0]:
                    total += (a.counters.get(key, 0) - a.prev[1].get(key, 0)) / (a.tick_t - a.prev[0])
            return round(total * scale, 2)

        s.setdefault("t", []).append(t)
        s.setdefault("clients", []).append(c.get("clients", 0))
        s.setdefault("publishing", []).append(c.get("publishing", 0))
        s.setdefault("sent_pps", []).append(rate("sent_packets"))
        s.setdefault("sent_mbps", []).append(rate("sent_bytes", 8 / 1e6))
        s.setdefault("recv_pps", []).append(rate("recv_packets"))
        s.setdefault("recv_mbps", []).append(rate("recv_bytes", 8 / 1e6))
        lost_rate = rate("lost")
        exp_rate = rate("expected")
        s.setdefault("loss_pct", []).append(round(100.0 * lost_rate / exp_rate, 3) if exp_rate > 0 else 0.0)
        s.setdefault("errors", []).append(c.get("errors", 0))
        gen, sent = rate("frames_generated"), rate("frames_sent")
        s.setdefault("frames_not_sent_pct", []).append(round(100.0 * (gen - sent) / gen, 2) if gen > 0 else 0.0)
        for kind in ("audio", "video"):
            h = self.tick_lat[kind]
            for p in (50, 90, 99):
                v = h.percentile(p)
                s.setdefault(f"lat_{kind}_p{p}", []).append(round(v / 1000, 3) if v is not None else None)
            h.reset()
        s.setdefault("agent_cpu", []).append(round(rate("cpu_s", 100.0), 1))
        s.setdefault("agent_rss_mb", []).append(round(sum(a.counters.get("rss", 0) for a in self.agents) / 1e6, 1))
        if not self.opts.quiet:
            self._progress(t, c, s)

    def _sum_counters(self) -> dict:
        total: dict[str, float] = {}
        for a in self.agents:
            for k, v in a.counters.items():
                total[k] = total.get(k, 0) + v
        return total

    def _progress(self, t: float, c: dict, s: dict) -> None:
        lat = s["lat_audio_p50"][-1], s["lat_audio_p99"][-1], s["lat_video_p50"][-1], s["lat_video_p99"][-1]

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f}"

        server = ""
        if self.probe is not None and self.probe.processes:
            cpu = sum((p["cpu"][-1] or 0) for p in self.probe.processes.values())
            rss = sum((p["rss_mb"][-1] or 0) for p in self.probe.processes.values())
            server = f" | server cpu {cpu:.0f}% rss {rss:.0f}MB"
        planned = sum(len(a.specs) for a in self.agents)
        line = (f"[{self.opts.target} {t:5.0f}s/{self.sc.duration_s:.0f}s] clients {c.get('clients', 0):.0f}"
                f" (ok {c.get('joins_ok', 0):.0f}/{planned} fail {c.get('joins_failed', 0):.0f})"
                f" pub {c.get('publishing', 0):.0f} | sent {s['sent_pps'][-1]:.0f} pkt/s {s['sent_mbps'][-1]:.2f} Mb/s"
                f" | recv {s['recv_pps'][-1]:.0f} pkt/s {s['recv_mbps'][-1]:.2f} Mb/s loss {s['loss_pct'][-1]:.2f}%"
                f" | 1-way ms a {ms(lat[0])}/{ms(lat[1])} v {ms(lat[2])}/{ms(lat[3])}"
                f" | err {c.get('errors', 0):.0f}{server} | agents cpu {s['agent_cpu'][-1]:.0f}%")
        print(line, file=sys.stderr, flush=True)

    # -- results

    def result(self, stamp: str, started: str, run_id: str, specs: list[ClientSpec], server: str) -> dict:
        finals = [a.final for a in self.agents if a.final is not None]
        for a in self.agents:
            if a.final is None:
                self.notes.append(f"agent {a.index} sent no final report (exit code {a.proc.returncode})")
            for e in a.errors:
                self.notes.append(f"agent {a.index}: {e}")
        meta = {
            "target": self.opts.target,
            "server": server,
            "run_id": run_id,
            "started_at": started,
            "stamp": stamp,
            "t0": self.t0,
            "command": self.opts.command,
            "processes": len(self.agents),
            "shard": f"{self.opts.shard_index}/{self.opts.shard_count}",
            "planned": len(specs),
            "agents": [{"index": a.index, "pid": a.pid, "clients": len(a.specs),
                        "exit_code": a.proc.returncode, "errors": a.errors} for a in self.agents],
        }
        series = {k: v for k, v in self.series.items() if not k.startswith("_")}
        return build_result(self.sc.to_dict(), finals, series, self.probe.to_dict() if self.probe else None,
                            self.notes, meta)


def build_result(scenario: dict, finals: list[dict], series: dict, server_side: dict | None, notes: list[str],
                 meta: dict) -> dict:
    """The result of one run from the agents' final reports (also used to merge hosts)."""
    clients = [c for f in finals for c in f["clients"]]
    streams = [s for f in finals for s in f["streams"]]
    errors: dict[str, int] = {}
    for f in finals:
        for k, v in f["errors"].items():
            errors[k] = errors.get(k, 0) + v
    details: dict[str, list[str]] = {}
    for f in finals:
        for k, v in f.get("error_details", {}).items():
            details.setdefault(k, []).extend(v[: max(0, 5 - len(details.get(k, [])))])
    lat = {"audio": Histogram(), "video": Histogram()}
    for f in finals:
        for k, h in f["latency"].items():
            lat[k].merge(h)
    counters: dict[str, float] = {}
    for f in finals:
        for k, v in f["counters"].items():
            counters[k] = counters.get(k, 0) + v
    latency = _latencies(clients, streams)
    latency["one_way_audio"] = lat["audio"].summary_ms()
    latency["one_way_video"] = lat["video"].summary_ms()
    expected = sum(s["expected"] for s in streams)
    lost = sum(s["lost"] for s in streams)
    video = [s for s in streams if s["kind"] == "video" and s["packets"]]
    dur = max(1e-3, float(scenario["duration_s"]))
    media = {
        "sent_packets": counters.get("sent_packets", 0),
        "sent_bytes": counters.get("sent_bytes", 0),
        "received_packets": sum(s["packets"] for s in streams),
        "received_bytes": sum(s["bytes"] for s in streams),
        "expected_packets": expected,
        "lost_packets": lost,
        "loss_pct": round(100.0 * lost / expected, 3) if expected else 0.0,
        "streams": len(streams),
        "streams_with_media": sum(1 for s in streams if s["packets"]),
        "video_freezes": sum(s["freezes"] for s in streams),
        "video_freeze_ms": round(sum(s["freeze_ms"] for s in streams), 1),
        "video_fps": percentiles([s["fps"] for s in video if s["fps"]], scale=1),
        "jitter_ms": percentiles([s["jitter_ms"] for s in streams if s["packets"]], scale=1),
        "decoded_frames": sum(s["decoded_frames"] for s in streams),
        "decoded_streams": sum(1 for s in streams if s["decoded_frames"]),
        "decode_errors": counters.get("decode_errors", 0),
        "ice_consent_expired": counters.get("ice_consent_expired", 0),
        "keyframe_requests": counters.get("keyframe_requests", 0),
        "frames_generated": counters.get("frames_generated", 0),
        "frames_not_sent": counters.get("frames_generated", 0) - counters.get("frames_sent", 0),
        "unbound_packets": counters.get("unbound_packets", 0),
    }
    media["avg_recv_mbps"] = round(media["received_bytes"] * 8 / dur / 1e6, 3)
    media["avg_sent_mbps"] = round(media["sent_bytes"] * 8 / dur / 1e6, 3)
    agent_cpu = [v for v in series.get("agent_cpu", []) if v is not None]
    out = dict(meta)
    out.update({
        "scenario": scenario,
        "clients": {
            "planned": meta.get("planned", len(clients)),
            "joined": sum(1 for c in clients if c.get("join_ok")),
            "join_failed": sum(1 for c in clients if c.get("join_failed")),
            "left": sum(1 for c in clients if c.get("leave_ok")),
            "publishers": sum(1 for c in clients if c.get("publish_ok")),
            "subscribers": sum(1 for c in clients if c.get("subscribe") and c.get("join_ok")),
        },
        "latency": latency,
        "media": media,
        "subscribers": _subscribers(clients, streams),
        "errors": dict(sorted(errors.items())),
        "error_examples": details,
        "series": series,
        "server_side": server_side,
        "load_generator": {
            "cpu_pct_avg": round(sum(agent_cpu) / len(agent_cpu), 1) if agent_cpu else None,
            "cpu_pct_max": max(agent_cpu) if agent_cpu else None,
        },
        "notes": notes,
        "streams": streams,
        "clients_raw": clients,
        "one_way_hist": {k: h.to_dict() for k, h in lat.items()},
        "counters": counters,
    })
    out["bottleneck"] = _bottleneck(out)
    return out


def _latencies(clients: list[dict], streams: list[dict]) -> dict:
    join_req = [c["join_request_s"] for c in clients if c.get("join_request_s") is not None]
    join_total = [c["join_ok"] - c["join_start"] for c in clients if c.get("join_ok")]
    pub_req = [c["publish_request_s"] for c in clients if c.get("publish_request_s") is not None]
    pub_total = [c["publish_ok"] - c["publish_start"] for c in clients if c.get("publish_ok")]
    sub_req = [s["ok"] - s["start"] for c in clients for s in c.get("subscriptions", []) if s.get("ok")]
    published = {(c["room"], c["user"]): c for c in clients if c.get("publish_ok")}
    by_sub: dict[tuple, list[dict]] = {}
    for s in streams:
        by_sub.setdefault((s["room"], s["subscriber"]), []).append(s)
    join_first, pub_first = [], []
    for c in clients:
        if not (c.get("subscribe") and c.get("join_ok")):
            continue
        mine = [s for s in by_sub.get((c["room"], c["user"]), []) if s["first_packet"]]
        # join → first media: only subscribers that joined after a stream they take was published
        ready = [s["first_packet"] for s in mine
                 if (p := published.get((c["room"], s["publisher"]))) and p["publish_ok"] <= c["join_start"]]
        if ready:
            join_first.append(min(ready) - c["join_start"])
        # publish → first packet: streams published while this subscriber was in the room
        for s in mine:
            p = published.get((c["room"], s["publisher"]))
            if p and p["publish_start"] >= c["join_ok"]:
                pub_first.append(s["first_packet"] - p["publish_start"])
    return {
        "join_request": percentiles(join_req),
        "join_connect_and_request": percentiles(join_total),
        "publish_request": percentiles(pub_req),
        "publish_total": percentiles(pub_total),
        "subscribe_total": percentiles(sub_req),
        "join_to_first_media": percentiles(join_first),
        "publish_to_first_packet": percentiles(pub_first),
    }


def _subscribers(clients: list[dict], streams: list[dict]) -> list[dict]:
    by_sub: dict[tuple, list[dict]] = {}
    for s in streams:
        by_sub.setdefault((s["room"], s["subscriber"]), []).append(s)
    out = []
    for c in clients:
        if not c.get("subscribe"):
            continue
        mine = by_sub.get((c["room"], c["user"]), [])
        out.append({
            "room": c["room"], "user": c["user"], "joined": bool(c.get("join_ok")),
            "subscriptions": len(c.get("subscriptions", [])),
            "subscribed_ok": sum(1 for s in c.get("subscriptions", []) if s.get("ok")),
            "streams": len(mine), "streams_with_media": sum(1 for s in mine if s["packets"]),
            "audio_packets": sum(s["packets"] for s in mine if s["kind"] == "audio"),
            "video_packets": sum(s["packets"] for s in mine if s["kind"] == "video"),
            "decoded_frames": sum(s["decoded_frames"] for s in mine),
            "errors": c.get("errors", []),
        })
    return out


def _bottleneck(r: dict) -> list[str]:
    """What probably limited the run (heuristics, stated as such in the report)."""
    out = []
    cores = os.cpu_count() or 1
    lg = r["load_generator"]
    if lg["cpu_pct_max"] is not None and lg["cpu_pct_max"] >= 90 * min(r["processes"], cores):
        out.append(f"load generator: its processes peaked at {lg['cpu_pct_max']:.0f}% CPU "
                   f"({r['processes']} process(es)) — the generator itself was saturated")
    ss = r.get("server_side") or {}
    for name, p in (ss.get("processes") or {}).items():
        vals = [v for v in p["cpu"] if v is not None]
        if vals and max(vals) >= 90:
            out.append(f"server process '{name}' peaked at {max(vals):.0f}% CPU (one core = 100%)")
    series = r["series"]
    if series.get("agent_cpu") and ss.get("processes"):
        total = [a + sum((p["cpu"][i] or 0) if i < len(p["cpu"]) else 0 for p in ss["processes"].values())
                 for i, a in enumerate(series["agent_cpu"])]
        if total and max(total) >= 90 * cores:
            out.append(f"machine: load generator + server used up to {max(total):.0f}% of {cores * 100}% CPU")
    m = r["media"]
    if m.get("frames_generated") and m["frames_not_sent"] > 0.05 * m["frames_generated"]:
        out.append(f"publishers: {100.0 * m['frames_not_sent'] / m['frames_generated']:.0f}% of generated frames "
                   "were never sent (a sender fell behind or its connection stopped)")
    if m.get("ice_consent_expired"):
        out.append(f"{m['ice_consent_expired']} client connections closed by ICE consent expiry (RFC 7675): "
                   "the other side stopped answering consent checks in time")
    if r["clients"]["join_failed"]:
        out.append(f"{r['clients']['join_failed']} joins failed (see errors)")
    return out
