"""Prometheus metrics of the service: calls, latencies, gallery sizes, dedup jobs.

One :class:`Metrics` per server, on its own registry (tests start several servers in one
process). ``serve(listen)`` exposes it at ``http://HOST:PORT/metrics``. Labels carry method
names and status codes only, never ids or biometric data.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds; verification is expected in milliseconds, 1:N and batch work in tens to hundreds.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "amayesh_calls",
            "RPCs answered, by method and gRPC status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "amayesh_call_seconds",
            "RPC latency, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.gallery = Gauge(
            "amayesh_gallery_templates",
            "Templates held in memory, by modality",
            ["modality"],
            registry=self.registry,
        )
        self.persons = Gauge("amayesh_persons", "Persons enrolled", registry=self.registry)
        self.jobs = Gauge(
            "amayesh_dedup_jobs_running", "Dedup jobs running now", registry=self.registry
        )

    def set_counts(self, counts: dict[str, int]) -> None:
        self.persons.set(counts["persons"])
        self.gallery.labels("finger").set(counts["fingers"])
        self.gallery.labels("iris").set(counts["irises"])

    def serve(self, listen: str) -> int:
        """Expose ``/metrics`` on ``HOST:PORT`` (port 0: a free one); returns the port."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.registry
        )
        return int(server.server_port)
