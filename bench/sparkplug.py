"""Sparkplug benchmark: values per second through the gateway (MQTT publish -> Kafka ack) from a
Sparkplug B edge node, against the same values on our JSON topic, in the same run.

Each round starts a gateway (embedded broker, Sparkplug host on) per path, in turn, and
publishes the same readings: 5 devices, 5 metrics each (4 Double, 1 Boolean), QoS 1 on one
connection: JSON on plant/{site}/dev-N/telemetry, or Sparkplug DDATA by alias (after the births)
on spBv1.0/{site}/DDATA/bench/dev-N. A path's rate is the readings Kafka acknowledged (the
gateway's count) times 5, over the time from the first publish. The ratio Sparkplug / JSON is
taken per round. Topics are the bench's own (`bench.isolation`).

Run: `python -m bench.sparkplug` (Kafka running). Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.isolation import TOPICS, isolate_children
from bench.results import Figure, record
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from tests.support.gateway import GatewayProcess
from tests.support.kafka import ensure_topics
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.services import kafka_bootstrap
from tests.support.waiting import wait_until

DEVICES = 5
METRICS = ("temp_c", "pressure_bar", "current_a", "speed_rpm")  # and "running"
VALUES_PER_READING = len(METRICS) + 1


def log(msg: str) -> None:
    print(msg, flush=True)


def json_messages(site: str, per_device: int, now: int) -> list[tuple[str, bytes]]:
    out = []
    for seq in range(per_device):
        for d in range(DEVICES):
            metrics: dict[str, float | bool] = {m: 20.0 + seq % 50 * 0.1 for m in METRICS}
            metrics["running"] = True
            body = {"ts": now + seq, "metrics": metrics}
            out.append((f"plant/{site}/dev-{d}/telemetry", json.dumps(body).encode()))
    return out


def _payload(seq: int, ts: int) -> pb.Payload:
    return pb.Payload(timestamp=ts, seq=seq % 256)


def sparkplug_messages(site: str, per_device: int, now: int) -> list[tuple[str, bytes]]:
    """NBIRTH, a DBIRTH per device (aliases 1..5), then DDATA by alias."""
    base = f"spBv1.0/{site}"
    birth = _payload(0, now)
    birth.metrics.add(name="bdSeq", datatype=pb.Int64, long_value=0)
    out = [(f"{base}/NBIRTH/bench", bytes(birth.SerializeToString()))]
    seq = 1
    for d in range(DEVICES):
        p = _payload(seq, now)
        seq += 1
        for i, m in enumerate(METRICS, start=1):
            p.metrics.add(name=m, alias=i, datatype=pb.Double, double_value=20.0)
        p.metrics.add(
            name="running", alias=len(METRICS) + 1, datatype=pb.Boolean, boolean_value=True
        )
        out.append((f"{base}/DBIRTH/bench/dev-{d}", bytes(p.SerializeToString())))
    for n in range(per_device):
        for d in range(DEVICES):
            p = _payload(seq, now + 1 + n)
            seq += 1
            for i, _ in enumerate(METRICS, start=1):
                p.metrics.add(alias=i, datatype=pb.Double, double_value=20.0 + n % 50 * 0.1)
            p.metrics.add(alias=len(METRICS) + 1, datatype=pb.Boolean, boolean_value=True)
            out.append((f"{base}/DDATA/bench/dev-{d}", bytes(p.SerializeToString())))
    return out


def run_path(bootstrap: str, path: str, per_device: int, workdir: Path) -> float:
    """Values/s through a fresh gateway on one path ("json" or "sparkplug")."""
    site = f"bench-{uuid.uuid4().hex[:6]}"
    port = free_port()
    gw = GatewayProcess(
        workdir / site,
        {
            "EDGE_GATEWAY_ID": site,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": bootstrap,
            "EDGE_LOG_LEVEL": "WARNING",
            "EDGE_MQTT_PORT": str(port),
            "EDGE_MQTT_ALLOW_ANONYMOUS": "true",
            "EDGE_SPARKPLUG_ENABLED": "true",
        },
    ).start()
    now = int(time.time() * 1000)
    make = sparkplug_messages if path == "sparkplug" else json_messages
    messages = make(site, per_device, now)
    # The DBIRTHs are readings too (the NBIRTH holds only bdSeq, which is no reading).
    expected = per_device * DEVICES + (DEVICES if path == "sparkplug" else 0)
    publisher = Publisher("127.0.0.1", port, f"bench-{path}-{site}")
    try:
        publisher.wait_connected()
        t0 = time.monotonic()
        publisher.publish_all(messages)
        wait_until(
            lambda: gw.status()["counters"]["forwarded_total"] >= expected,
            600,
            f"{expected} readings acknowledged by Kafka",
            interval=0.1,
        )
        elapsed = time.monotonic() - t0
        status = gw.status()
    finally:
        publisher.close()
        gw.terminate()
    dead = status["counters"]["dead_lettered_total"]
    if dead:
        log(f"  warning: {dead} dead letters {status['counters']['dead_lettered_by_reason']}")
    return expected * VALUES_PER_READING / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-device", type=int, default=4000, help="readings per device")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each runs both paths)")
    args = parser.parse_args()
    bootstrap = kafka_bootstrap()
    isolate_children()
    asyncio.run(ensure_topics(bootstrap, TOPICS.all()))
    rates: dict[str, list[float]] = {"json": [], "sparkplug": []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sparkplug-bench-") as tmp:
        for round_no in range(1, args.repeat + 1):
            for path in ("json", "sparkplug"):
                log(f"[{round_no}/{args.repeat}] {path} ...")
                rate = run_path(bootstrap, path, args.per_device, Path(tmp))
                rates[path].append(rate)
                log(f"  {rate:,.0f} values/s")
            ratios.append(rates["sparkplug"][-1] / rates["json"][-1])
    json_rate = statistics.median(rates["json"])
    sp_rate = statistics.median(rates["sparkplug"])
    ratio = statistics.median(ratios)
    record(
        Figure(
            "sparkplug", f"gateway via JSON topic, median of {args.repeat}", json_rate, "values/s"
        )
    )
    record(
        Figure(
            "sparkplug",
            f"gateway via Sparkplug B, median of {args.repeat}",
            sp_rate,
            "values/s",
            ratio,
            "JSON topic",
        )
    )
    log("")
    log("== Sparkplug benchmark ==")
    log(
        f"{DEVICES} devices x {args.per_device:,} readings, {VALUES_PER_READING} values each, QoS 1"
    )
    log(f"values/s over {args.repeat} rounds:      min   median      max")
    for path, values in rates.items():
        median = statistics.median(values)
        log(f"gateway via {path:<10}        {min(values):8,.0f} {median:8,.0f} {max(values):8,.0f}")
    log(
        f"Sparkplug / JSON, per round: {', '.join(f'{r:.2f}' for r in ratios)} (median {ratio:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
