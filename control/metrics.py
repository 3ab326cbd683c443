"""Prometheus metrics of the control plane, in a registry per application so
several servers (tests) can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kindling_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kindling_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.ws_connections = Gauge(
            "kindling_signalling_connections", "Open signalling WebSockets", registry=self.registry
        )
        self.rooms = Gauge("kindling_rooms_running", "Rooms in state RUNNING", registry=self.registry)
        self.participants = Gauge(
            "kindling_participants", "Participants in running rooms", registry=self.registry
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, ... of the control process
        ProcessCollector(registry=self.registry)
        self.signalling_requests = Counter(
            "kindling_signalling_requests_total",
            "Signalling requests by type and outcome code (0 = success)",
            ["type", "code"],
            registry=self.registry,
        )

    def watch_pool(self, engine) -> None:
        """Export the SQLAlchemy pool's state at scrape time."""
        pool = engine.sync_engine.pool

        class _PoolCollector:
            def collect(self):
                for name, value, doc in (
                    ("kindling_db_pool_size", pool.size(), "Configured pool size"),
                    ("kindling_db_pool_checked_out", pool.checkedout(), "Connections in use"),
                    ("kindling_db_pool_overflow", pool.overflow(), "Connections over the pool size"),
                    ("kindling_db_pool_checked_in", pool.checkedin(), "Idle connections in the pool"),
                ):
                    yield GaugeMetricFamily(name, doc, value=value)

        self.registry.register(_PoolCollector())

    def watch_workers(self, registry) -> None:
        """Export each SFU worker's last reported load at scrape time."""

        class _WorkerCollector:
            def collect(self):
                alive = GaugeMetricFamily("kindling_workers_alive", "SFU workers connected and heartbeating",
                                          value=len(registry.live()))
                yield alive
                for key, name, doc in (
                    ("rooms", "kindling_worker_rooms", "Rooms hosted"),
                    ("publishers", "kindling_worker_publishers", "Publisher connections"),
                    ("subscribers", "kindling_worker_subscribers", "Subscriber connections"),
                    ("packetsIn", "kindling_worker_packets_in", "RTP packets received since start"),
                    ("cpuSeconds", "kindling_worker_cpu_seconds_total", "CPU seconds used by the worker process"),
                    ("rssBytes", "kindling_worker_resident_memory_bytes", "Resident memory of the worker process"),
                ):
                    fam = GaugeMetricFamily(name, doc, labels=["worker"])
                    for w in registry.live():
                        if key in w.load:
                            fam.add_metric([w.worker_id], float(w.load[key]))
                    yield fam

        self.registry.register(_WorkerCollector())

    def render(self) -> bytes:
        return generate_latest(self.registry)
