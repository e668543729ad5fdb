"""Prometheus metrics of the service. Counters and histograms are per process (the API and its in-process
workers share them; `soctriage worker --metrics-port` serves a worker's); queue depth and cases by status are
read from the database at scrape time, so any process reports the same totals."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from soctriage.service.store import Store
from soctriage.service.store.schema import cases
from sqlalchemy import func, select

REGISTRY = CollectorRegistry()

ALERTS_RECEIVED = Counter(
    "soctriage_alerts_received_total", "alerts accepted at intake (new cases)", registry=REGISTRY
)
ALERTS_DUPLICATE = Counter(
    "soctriage_alerts_duplicate_total",
    "re-delivered alerts that joined their existing case",
    registry=REGISTRY,
)
ALERTS_REJECTED = Counter(
    "soctriage_alerts_rejected_total", "records rejected at intake (kept in quarantine)", registry=REGISTRY
)
MODEL_CALLS = Counter(
    "soctriage_model_calls_total", "model calls recorded in case ledgers", ["model"], registry=REGISTRY
)
MODEL_TOKENS = Counter(
    "soctriage_model_tokens_total", "model tokens used", ["model", "kind"], registry=REGISTRY
)
ACTION_DECISIONS = Counter(
    "soctriage_action_decisions_total",
    "human decisions on actions, by outcome (queued, refused_role, refused_state, expired)",
    ["outcome"],
    registry=REGISTRY,
)
JOBS = Counter(
    "soctriage_jobs_total", "queue jobs finished, by task and outcome", ["task", "outcome"], registry=REGISTRY
)
_TIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
TIME_TO_VERDICT = Histogram(
    "soctriage_time_to_verdict_seconds",
    "from intake to the case's verdict state (final or awaiting approval)",
    buckets=_TIME_BUCKETS,
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "soctriage_job_seconds",
    "time a worker spent on one job",
    ["task"],
    buckets=_TIME_BUCKETS,
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "soctriage_http_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)


class StoreCollector(Collector):
    """Queue depth and cases by status, counted in the database when scraped."""

    def __init__(self, store: Store, queue_depth: Callable[[], int]) -> None:
        self.store = store
        self.queue_depth = queue_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("soctriage_queue_depth", "jobs waiting or running")
        depth.add_metric([], self.queue_depth())
        yield depth
        by_status = GaugeMetricFamily("soctriage_cases", "cases by status", labels=["status"])
        with self.store.engine.connect() as conn:
            for status, count in conn.execute(select(cases.c.status, func.count()).group_by(cases.c.status)):
                by_status.add_metric([status], count)
        yield by_status


def track_store(store: Store, queue_depth: Callable[[], int]) -> Callable[[], None]:
    """Register the scrape-time collector; returns the function that unregisters it."""
    collector = StoreCollector(store, queue_depth)
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)
