"""The server side of a run, sampled once a second:

* ``GET /metrics`` of the control plane (Prometheus text): participants, rooms,
  signalling requests by outcome, and — when the server exports them —
  ``process_cpu_seconds_total`` / ``process_resident_memory_bytes``;
* on the same host, CPU and RSS of the server's processes from /proc: the
  process listening on the server's port and its descendants (SFU workers,
  embedded PostgreSQL), minus the load tester's own processes. This is what
  covers the SFU workers, which export no metrics of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_prometheus(text: str) -> dict[str, list[tuple[dict, float]]]:
    out: dict[str, list[tuple[dict, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.setdefault(m.group(1), []).append((labels, value))
    return out


def metric_sum(metrics: dict, name: str, **match: str) -> float | None:
    rows = metrics.get(name)
    if rows is None:
        return None
    return sum(v for labels, v in rows if all(labels.get(k) == want for k, want in match.items()))


# ---------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[int, float, str] | None:
    """(ppid, cpu seconds, comm) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.index("(") + 1 : data.rindex(")")]
    rest = data[data.rindex(")") + 2 :].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK, comm


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def listening_pid(port: int) -> int | None:
    """The process with a TCP socket listening on ``port`` (Linux /proc; needs
    permission to read other processes' fds, as root or the same user)."""
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in _all_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                        return pid
        except OSError:
            continue
    return None


def descendants(root: int, exclude: set[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def label(pid: int, root: int) -> str:
    cmd = _cmdline(pid)
    st = _stat(pid)
    comm = st[2] if st else "?"
    if "sfu.worker" in cmd or "kindling worker" in cmd:
        m = re.search(r"--worker-id\s+(\S+)", cmd)
        return f"sfu-worker {m.group(1) if m else pid}"
    if "naive_relay" in cmd:
        return "naive-relay"
    if comm.startswith("postgres") or "postgres" in cmd.split(" ", 1)[0]:
        return "postgres"
    if pid == root:
        return "control-plane"
    return comm


def is_local(url: str) -> bool:
    host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    if host in ("localhost", "") or host.startswith("127.") or host == "::1":
        return True
    try:
        return socket.gethostbyname(host).startswith("127.")
    except OSError:
        return False


@dataclass
class ServerProbe:
    """Collects the server series; ``sample()`` once a second."""

    url: str
    metrics_url: str | None
    root_pid: int | None
    exclude: set[int] = field(default_factory=set)
    t: list[float] = field(default_factory=list)
    processes: dict[str, dict[str, list]] = field(default_factory=dict)  # label -> {"cpu": [...], "rss_mb": [...]}
    metric_series: dict[str, list] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    has_process_metrics: bool | None = None
    last_metrics: dict = field(default_factory=dict)
    _prev_cpu: dict[int, float] = field(default_factory=dict)
    _prev_t: float = 0.0
    _pids: list[int] = field(default_factory=list)
    _pids_at: float = 0.0
    _prev_metric_cpu: float | None = None
    _prev_worker_cpu: dict[str, float] = field(default_factory=dict)

    async def sample(self, http: aiohttp.ClientSession, t0: float) -> None:
        now = time.time()
        self.t.append(round(now - t0, 2))
        n = len(self.t)
        if self.root_pid is not None:
            if now - self._pids_at > 5 or not self._pids:
                self._pids = descendants(self.root_pid, self.exclude)
                self._pids_at = now
            cpu: dict[str, float] = {}
            rss: dict[str, float] = {}
            dt = now - self._prev_t if self._prev_t else 0.0
            for pid in self._pids:
                st = _stat(pid)
                if st is None:
                    continue
                name = label(pid, self.root_pid)
                prev = self._prev_cpu.get(pid)
                self._prev_cpu[pid] = st[1]
                if prev is not None and dt > 0:
                    cpu[name] = cpu.get(name, 0.0) + 100.0 * (st[1] - prev) / dt
                rss[name] = rss.get(name, 0.0) + _rss(pid) / 1e6
            self._prev_t = now
            for name in set(cpu) | set(rss) | set(self.processes):
                series = self.processes.setdefault(name, {"cpu": [None] * (n - 1), "rss_mb": [None] * (n - 1)})
                series["cpu"].append(round(cpu[name], 1) if name in cpu else None)
                series["rss_mb"].append(round(rss[name], 1) if name in rss else None)
        metrics: dict = {}
        if self.metrics_url:
            try:
                async with asyncio.timeout(2):
                    async with http.get(self.metrics_url) as resp:
                        if resp.status == 200:
                            metrics = parse_prometheus(await resp.text())
            except (TimeoutError, aiohttp.ClientError, OSError):
                metrics = {}
        self.last_metrics = metrics or self.last_metrics
        values = {
            "participants": metric_sum(metrics, "kindling_participants"),
            "rooms": metric_sum(metrics, "kindling_rooms_running"),
            "ws_connections": metric_sum(metrics, "kindling_signalling_connections"),
            "rss_mb": None,
            "cpu": None,
        }
        pcpu = metric_sum(metrics, "process_cpu_seconds_total")
        prss = metric_sum(metrics, "process_resident_memory_bytes")
        if metrics and self.has_process_metrics is None:
            self.has_process_metrics = pcpu is not None
        if prss is not None:
            values["rss_mb"] = round(prss / 1e6, 1)
        if pcpu is not None:
            if self._prev_metric_cpu is not None and len(self.t) > 1:
                values["cpu"] = round(100.0 * (pcpu - self._prev_metric_cpu) / max(1e-3, self.t[-1] - self.t[-2]), 1)
            self._prev_metric_cpu = pcpu
        # SFU workers as the control plane exports them (when it does: see docs/benchmarks.md)
        for labels, v in metrics.get("kindling_worker_cpu_seconds_total", []):
            key = f"worker {labels.get('worker', '?')} cpu"
            prev = self._prev_worker_cpu.get(key)
            self._prev_worker_cpu[key] = v
            if prev is not None and len(self.t) > 1:
                values[key] = round(100.0 * (v - prev) / max(1e-3, self.t[-1] - self.t[-2]), 1)
        for labels, v in metrics.get("kindling_worker_resident_memory_bytes", []):
            values[f"worker {labels.get('worker', '?')} rss_mb"] = round(v / 1e6, 1)
        for k, v in values.items():
            self.metric_series.setdefault(k, [None] * (n - 1)).append(v)
        for series in self.metric_series.values():
            if len(series) < n:
                series.extend([None] * (n - len(series)))

    def signalling_outcomes(self) -> dict[str, float]:
        """Signalling requests by type:code as counted by the server (cumulative)."""
        out = {}
        for labels, v in self.last_metrics.get("kindling_signalling_requests_total", []):
            out[f"{labels.get('type')}:{labels.get('code')}"] = v
        return out

    def to_dict(self) -> dict:
        return {
            "t": self.t,
            "processes": self.processes,
            "metrics": self.metric_series,
            "has_process_metrics": self.has_process_metrics,
            "signalling_outcomes": self.signalling_outcomes(),
            "root_pid": self.root_pid,
            "notes": self.notes,
        }
