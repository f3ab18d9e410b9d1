"""Notification benchmark: time from a breaching reading's MQTT publish to the arrival of its
webhook notification, p50 and p99.

The path measured is the product's: a paho publisher -> an edge gateway (`iot-edge run`, its
embedded MQTT broker) -> Kafka -> `iot-hub worker` (the reading committed, the alert raised and
its outbox row committed in one transaction) -> the worker's notification dispatcher (its 0.5 s
timer) -> an HTTP receiver in this process. Each sample is a new conveyor reporting `jammed:
true` (a critical alert at once, hub/rules/defaults.yaml), so each raises a new alert; the
route's group window is 0 (with the default 30 s, the first alert of a quiet route goes at once
as here, and those following it within the window wait for its end). One machine, one clock.

Isolated like the other benches (`bench.isolation`): the bench's topic prefix, a database of
this run only, a redis-server of its own. Run with `python -m bench.notify_latency`. Prints
figures; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp.web

from bench.hub_ingest import create_database, drop_database
from bench.isolation import TOPICS, isolate_children, own_redis
from bench.results import Figure, record
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, position_group_at_end
from tests.support.kafka import ensure_topics
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.services import kafka_bootstrap, run_services


def log(msg: str) -> None:
    print(msg, flush=True)


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


class Receiver:
    """The webhook: the arrival time of each device's first notification."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.event = asyncio.Event()

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        now = time.time() * 1000
        body = await request.json()
        for n in body["notifications"]:
            self.arrived.setdefault(n["alert"]["device_id"], now)
        self.event.set()
        return aiohttp.web.Response(text="ok")


async def main_async(args: argparse.Namespace) -> list[float]:
    kafka = kafka_bootstrap()
    await ensure_topics(kafka, TOPICS.all())
    tag = uuid.uuid4().hex[:6]
    name = f"iot_bench_notify_{tag}"
    dsn = await create_database(name)
    receiver = Receiver()
    app = aiohttp.web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with own_redis() as redis_url:
            return await run_pipeline(args, kafka, dsn, redis_url, tag, receiver, port)
    finally:
        await runner.cleanup()
        await drop_database(name)


async def run_pipeline(
    args: argparse.Namespace,
    kafka: str,
    dsn: str,
    redis_url: str,
    tag: str,
    receiver: Receiver,
    port: int,
) -> list[float]:
    site = f"benchnotify-{tag}"
    with (
        tempfile.TemporaryDirectory(prefix="notify-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        notifications = workdir / "notifications.yaml"
        notifications.write_text(
            "channels:\n"
            f'  - {{name: bench, type: webhook, url: "http://127.0.0.1:{port}/hook"}}\n'
            "routes:\n"
            "  - {match: {severity: [critical]}, channels: [bench], group_window_s: 0}\n"
        )
        worker = HubWorkerProcess(
            workdir / "worker",
            kafka,
            redis_url,
            database_url=dsn,
            env={
                "HUB_INGEST_BATCH_MAX": "2000",
                "HUB_LOG_LEVEL": "WARNING",
                "HUB_NOTIFICATIONS_FILE": str(notifications),
            },
        )
        await position_group_at_end(kafka, worker.group, names=TOPICS)
        worker.start()
        stack.callback(worker.cleanup)
        mqtt_port = free_port()
        gateway = GatewayProcess(
            workdir / "gateway",
            {
                "EDGE_GATEWAY_ID": f"gw-{site}",
                "EDGE_SITE": site,
                "EDGE_KAFKA_BOOTSTRAP": kafka,
                "EDGE_MQTT_PORT": str(mqtt_port),
                "EDGE_MQTT_ALLOW_ANONYMOUS": "true",
                "EDGE_LOG_LEVEL": "WARNING",
            },
        )
        await asyncio.to_thread(gateway.start)
        stack.callback(gateway.terminate)
        publisher = Publisher("127.0.0.1", mqtt_port, client_id=f"bench-notify-{tag}")
        publisher.wait_connected()
        stack.callback(publisher.close)

        def publish(device: str) -> float:
            sent = time.time() * 1000
            body = {"ts": int(sent), "type": "conveyor", "metrics": {"jammed": True}}
            publisher.client.publish(
                f"plant/{site}/{device}/telemetry", json.dumps(body), qos=1
            ).wait_for_publish(10)
            return sent

        # Warm-up: the first one waits for the worker's start-up and partition assignment.
        deadline = time.monotonic() + 120
        warm = f"warm-{tag}"
        publish(warm)
        while warm not in receiver.arrived:
            if time.monotonic() > deadline or not worker.running():
                raise RuntimeError(f"no notification arrived; see {worker.log_path}")
            await asyncio.sleep(0.1)  # bench polling interval
        log(f"pipeline warm; {args.samples} samples, one every {args.interval} s ...")
        latencies = []
        for i in range(args.samples):
            device = f"belt-{tag}-{i}"
            sent = publish(device)
            deadline = time.monotonic() + 60
            while device not in receiver.arrived:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sample {i} never arrived; see {worker.log_path}")
                await asyncio.sleep(0.01)  # bench polling interval
            latencies.append(receiver.arrived[device] - sent)
            # Pacing with jitter over the dispatcher's 0.5 s period, so samples do not lock
            # onto one phase of its timer.
            await asyncio.sleep(args.interval + random.uniform(0, 0.5))
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--interval", type=float, default=0.2, help="seconds between samples (plus 0-0.5 s)"
    )
    args = parser.parse_args()
    run_services("start", "kafka", "postgres", "redis")
    isolate_children()
    latencies = sorted(asyncio.run(main_async(args)))
    p50, p99 = statistics.median(latencies), quantile(latencies, 0.99)
    log("")
    log("== notification benchmark: MQTT publish of a breaching reading -> webhook arrival ==")
    log(f"samples {len(latencies)}  p50 {p50:.0f} ms  p99 {p99:.0f} ms  max {latencies[-1]:.0f} ms")
    record(Figure("notify_latency", "breaching publish -> webhook p50", p50, "ms"))
    record(Figure("notify_latency", "breaching publish -> webhook p99", p99, "ms"))


if __name__ == "__main__":
    main()
