"""What keeps `make bench` out of what `make demo` shows, on the same machine and services.

* Kafka: every topic a bench produces to or consumes from has the prefix `BENCH_TOPIC_PREFIX`
  (default `bench.`, so `bench.iot.telemetry`...), which `isolate_children` hands to every
  gateway and hub worker the bench starts (`EDGE_KAFKA_TOPIC_PREFIX`, `HUB_KAFKA_TOPIC_PREFIX`);
  the demo's worker reads the plain names. Consumer groups are the bench's own, per run.
* PostgreSQL: a database per run, dropped at the end (`bench.hub_ingest.create_database`).
* Redis: a redis-server of the bench's own on a free port (`own_redis`). A database number
  would not do: Redis pub/sub channels are shared by all its databases, and the demo's
  dashboard would get the bench's live readings and alert events.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from hub.settings import HUB_DLQ_TOPIC
from protocol.topics import KafkaTopics, topic_name
from tests.support.redis_server import redis_server

TOPIC_PREFIX: Final = os.environ.get("BENCH_TOPIC_PREFIX", "bench.")
TOPICS: Final = KafkaTopics(TOPIC_PREFIX)
HUB_DLQ: Final = topic_name(HUB_DLQ_TOPIC, TOPIC_PREFIX)


def isolate_children() -> None:
    """Every gateway and worker this process starts from now on uses the bench's topics (the
    process helpers pass this process's environment on)."""
    os.environ["EDGE_KAFKA_TOPIC_PREFIX"] = TOPIC_PREFIX
    os.environ["HUB_KAFKA_TOPIC_PREFIX"] = TOPIC_PREFIX


@contextmanager
def own_redis() -> Iterator[str]:
    """The URL of a redis-server of this run's own, stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, redis_server(Path(tmp)) as s:
        yield s.url()
