"""Web benchmark: latency from an MQTT publish to its arrival at WebSocket clients of
`iot-hub web` (`/api/v1/live`), p50 and p99, with 1, 10 and 50 concurrent clients, while the
whole pipeline runs at 1,000 readings/s; and the web process's CPU meanwhile.

The path measured is the product's: a paho publisher -> an edge gateway (`iot-edge run`, its
embedded MQTT broker) -> Kafka -> `iot-hub worker` (PostgreSQL, then Redis pub/sub) -> the web
process's one Redis subscription -> its fan-out -> each WebSocket client. Each reading's `ts` is
its publish time (epoch ms): a client's latency for a reading is its receive time minus `ts`
(one machine, one clock). Clients subscribe to everything, as the dashboard's overview does, and
keep only this run's site; readings other processes publish meanwhile only add load.

The worker's batching sets a floor: under load, ingest batches are `HUB_INGEST_BATCH_WAIT_S`
apart (an idle pipe flushes at once); the benchmark runs the setting's default unless
`--batch-wait` says otherwise, and prints which. Above it is the pipeline's own work: the edge's
buffer commit and forwarding, Kafka, the worker's PostgreSQL commit and Redis publish, the web
fan-out. A plain Kafka consumer and a plain Redis subscriber beside the web process measure the
same readings at those two points, which splits the latency between the edge, the hub worker
and the web process; the CPU of each process over the window is printed too.

Run with `make bench` (starts Kafka, PostgreSQL and Redis). Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from bench.hub_ingest import create_database, drop_database
from bench.isolation import TOPICS, isolate_children, own_redis
from bench.results import Figure, record
from hub.settings import HubSettings
from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_model import Actor
from hub.storage.redis_keys import READINGS_CHANNEL
from iot_common.prometheus import parse as parse_metrics
from protocol.codec import decode_telemetry_value
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, position_group_at_end
from tests.support.kafka import ensure_topics
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.services import kafka_bootstrap, run_services
from tests.support.web import WebProcess

DEVICES = 20


def log(msg: str) -> None:
    print(msg, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


class PacedPublisher:
    """Publishes readings at a steady rate from a thread, each with its publish time as `ts`."""

    def __init__(self, host: str, port: int, site: str, rate: float) -> None:
        self.site = site
        self.rate = rate
        self.sent = 0
        self._pub = Publisher(host, port, client_id=f"bench-web-{site}")
        self._pub.wait_connected()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.is_set():
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._pub.client.publish(
                f"plant/{self.site}/dev-{i % DEVICES}/telemetry",
                json.dumps(
                    {"ts": now_ms(), "seq": i // DEVICES, "metrics": {"value": float(i)}},
                    separators=(",", ":"),
                ),
                qos=1,
            )
            i += 1
            self.sent = i

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pub.close()


@dataclass
class Client:
    """One WebSocket client; records the latency of every reading of `site` it receives."""

    site: str
    latencies: list[float] = field(default_factory=list)
    messages: int = 0
    recording: bool = False
    closed_with: int | None = None

    @property
    def receiving(self) -> bool:
        return self.messages > 0

    async def run(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        async with session.ws_connect(url, params={"token": token, "alerts": "false"}) as ws:
            async for msg in ws:
                received = time.time() * 1000  # before parsing: parsing is the client's cost
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                body = json.loads(msg.data)
                if body.get("type") != "readings":
                    continue
                mine = [r["ts"] for r in body["readings"] if r.get("site") == self.site]
                if mine:
                    self.messages += 1
                    if self.recording:
                        self.latencies += [received - ts for ts in mine]
            self.closed_with = ws.close_code


class RedisTap:
    """A plain subscriber to the worker's channel, beside the web process: the same readings'
    latency up to Redis, so the table shows what the web process and the WebSocket add."""

    def __init__(self, site: str, redis_url: str) -> None:
        self.site = site
        self.redis_url = redis_url
        self.latencies: list[float] = []
        self.recording = False

    async def run(self, ready: asyncio.Event) -> None:
        client = Redis.from_url(self.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(READINGS_CHANNEL)
            ready.set()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                received = time.time() * 1000
                if message is None or not self.recording:
                    continue
                body = json.loads(message["data"])
                self.latencies += [
                    received - r["ts"] for r in body["readings"] if r.get("site") == self.site
                ]
        finally:
            await pubsub.aclose()
            await client.aclose()


class KafkaTap:
    """A plain consumer of the bench's telemetry topic: the same readings' latency up to Kafka
    (what the edge gateway adds), so the table splits edge, hub worker and web process."""

    def __init__(self, site: str, bootstrap: str) -> None:
        self.site = site
        self.bootstrap = bootstrap
        self.latencies: list[float] = []
        self.recording = False

    async def run(self, ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            TOPICS.telemetry, bootstrap_servers=self.bootstrap, auto_offset_reset="latest",
            fetch_max_wait_ms=10,
        )  # fmt: skip
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=1000)  # joined: positions at the end
            ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                received = time.time() * 1000
                if not self.recording:
                    continue
                for records in batches.values():
                    for rec in records:
                        self.latencies += [
                            received - r.ts
                            for r in decode_telemetry_value(rec.value or b"")
                            if r.site == self.site
                        ]
        finally:
            await consumer.stop()


@dataclass
class Result:
    clients: int
    readings: int
    p50: float
    p99: float
    max: float
    cpu_pct: float
    rss_mib: float
    dropped: int
    redis_p50: float
    redis_p99: float
    kafka_p50: float
    kafka_p99: float
    worker_cpu_pct: float
    gateway_cpu_pct: float


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


async def fetch_dropped(session: aiohttp.ClientSession, web: WebProcess) -> int:
    async with session.get(f"{web.url}/metrics") as resp:
        return int(parse_metrics(await resp.text())["hub_web_live_dropped_total"])


@dataclass
class Pipeline:
    web: WebProcess
    worker_pid: int
    gateway_pid: int
    kafka: str
    token: str
    site: str


async def measure(p: Pipeline, n: int, warmup_s: float, seconds: float) -> Result:
    web, site = p.web, p.site
    clients = [Client(site) for _ in range(n)]
    tap = RedisTap(site, web.env["HUB_REDIS_URL"])
    tap_ready = asyncio.Event()
    ktap = KafkaTap(site, p.kafka)
    ktap_ready = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        dropped_before = await fetch_dropped(session, web)
        tasks = [asyncio.create_task(c.run(session, web.ws_url, p.token)) for c in clients]
        tasks.append(asyncio.create_task(tap.run(tap_ready)))
        tasks.append(asyncio.create_task(ktap.run(ktap_ready)))
        try:
            deadline = time.monotonic() + 120
            while not all(c.receiving for c in clients):
                if time.monotonic() > deadline:
                    raise TimeoutError("clients receive nothing: is the pipeline running?")
                ended = [t for t in tasks if t.done()]
                if ended:
                    raise RuntimeError(f"a client ended early: {ended[0].exception()!r}")
                await asyncio.sleep(0.1)  # bench polling interval
            await asyncio.sleep(warmup_s)  # let the connection ramp-up settle
            proc = psutil.Process(web.proc.pid if web.proc else 0)
            others = [psutil.Process(p.worker_pid), psutil.Process(p.gateway_pid)]
            for each in (proc, *others):
                each.cpu_percent()  # starts the interval
            await asyncio.wait_for(tap_ready.wait(), 10)
            await asyncio.wait_for(ktap_ready.wait(), 30)
            for c in clients:
                c.recording = True
            tap.recording = ktap.recording = True
            await asyncio.sleep(seconds)  # the measuring window
            tap.recording = ktap.recording = False
            for c in clients:
                c.recording = False
            cpu = proc.cpu_percent()
            worker_cpu, gateway_cpu = (each.cpu_percent() for each in others)
            rss = proc.memory_info().rss / 2**20
            dropped = await fetch_dropped(session, web) - dropped_before
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(x for c in clients for x in c.latencies)
    reference = sorted(tap.latencies)
    at_kafka = sorted(ktap.latencies)
    if not latencies or not reference or not at_kafka:
        raise RuntimeError("no readings received while measuring")
    return Result(
        clients=n,
        readings=len(latencies),
        p50=statistics.median(latencies),
        p99=quantile(latencies, 0.99),
        max=latencies[-1],
        cpu_pct=cpu,
        rss_mib=rss,
        dropped=dropped,
        redis_p50=statistics.median(reference),
        redis_p99=quantile(reference, 0.99),
        kafka_p50=statistics.median(at_kafka),
        kafka_p99=quantile(at_kafka, 0.99),
        worker_cpu_pct=worker_cpu,
        gateway_cpu_pct=gateway_cpu,
    )


def pid_of(proc: subprocess.Popen[bytes] | None) -> int:
    if proc is None:
        raise RuntimeError("the process is not running")
    return proc.pid


async def create_token(dsn: str) -> str:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        return await PostgresAccounts(pool).create_token(
            "bench", "viewer", actor=Actor("bench", "bench/web_live.py")
        )
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> list[Result]:
    kafka = kafka_bootstrap()
    await ensure_topics(kafka, TOPICS.all())
    tag = uuid.uuid4().hex[:6]
    site = f"benchweb-{tag}"
    name = f"iot_bench_web_{tag}"
    dsn = await create_database(name)
    results: list[Result] = []
    try:
        with own_redis() as redis_url:
            await run_pipeline(args, kafka, dsn, redis_url, site, results)
    finally:
        await drop_database(name)
    return results


async def run_pipeline(
    args: argparse.Namespace,
    kafka: str,
    dsn: str,
    redis_url: str,
    site: str,
    results: list[Result],
) -> None:
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        token = await create_token(dsn)

        worker = HubWorkerProcess(
            workdir / "worker",
            kafka,
            redis_url,
            database_url=dsn,
            env={
                "HUB_INGEST_BATCH_MAX": "2000",
                "HUB_INGEST_BATCH_WAIT_S": str(args.batch_wait),
                "HUB_LOG_LEVEL": "WARNING",
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
                "EDGE_MQTT_ALLOW_ANONYMOUS": "true",  # the paced publisher has no login
                "EDGE_LOG_LEVEL": "WARNING",
            },
        )
        await asyncio.to_thread(gateway.start)
        stack.callback(gateway.terminate)

        web = WebProcess(
            workdir / "web",
            {"HUB_DATABASE_URL": dsn, "HUB_REDIS_URL": redis_url, "HUB_LOG_LEVEL": "WARNING"},
        )
        await asyncio.to_thread(web.start)
        stack.callback(web.stop)

        publisher = PacedPublisher("127.0.0.1", mqtt_port, site, args.rate)
        publisher.start()
        stack.callback(publisher.stop)
        log(
            f"pipeline: {args.rate:,.0f} readings/s over {DEVICES} devices, MQTT -> edge gateway "
            f"-> Kafka -> hub worker (HUB_INGEST_BATCH_WAIT_S={args.batch_wait}) -> Redis -> web"
        )
        for n in args.clients:
            log(f"{n} WebSocket client(s): {args.seconds:.0f} s ...")
            pipeline = Pipeline(web, pid_of(worker.proc), pid_of(gateway.proc), kafka, token, site)
            result = await measure(pipeline, n, args.warmup, args.seconds)
            log(
                f"  {result.readings:,} readings received, p50 {result.p50:.0f} ms, "
                f"p99 {result.p99:.0f} ms (at Redis: p50 {result.redis_p50:.0f} ms, "
                f"p99 {result.redis_p99:.0f} ms; at Kafka: p50 {result.kafka_p50:.0f} ms, "
                f"p99 {result.kafka_p99:.0f} ms), CPU: web {result.cpu_pct:.0f}%, "
                f"worker {result.worker_cpu_pct:.0f}%, gateway {result.gateway_cpu_pct:.0f}%"
            )
            results.append(result)
            record(Figure("web_live", f"publish -> WebSocket p99, {n} client(s)", result.p99,
                          "ms", result.p99 / result.redis_p99, "p99 at Redis"))  # fmt: skip
        if not worker.running():
            raise RuntimeError(f"the worker exited; see {worker.log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="readings per second")
    parser.add_argument(
        "--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50]
    )
    parser.add_argument("--seconds", type=float, default=20, help="measuring window per run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    parser.add_argument(
        "--batch-wait",
        type=float,
        default=HubSettings().ingest_batch_wait_s,
        help="HUB_INGEST_BATCH_WAIT_S (default: the setting's default)",
    )
    args = parser.parse_args()
    run_services("start", "kafka", "postgres", "redis")
    isolate_children()  # the gateway and worker of this run use TOPICS, not the demo's topics
    results = asyncio.run(main_async(args))
    cores = psutil.cpu_count() or 1
    log("")
    log(
        f"== web live benchmark: MQTT publish -> WebSocket client, {args.rate:,.0f} readings/s, "
        f"HUB_INGEST_BATCH_WAIT_S={args.batch_wait}, {cores} cores =="
    )
    log(
        "clients  readings recv   p50 ms   p99 ms   max ms   web CPU   web RSS   dropped"
        "   at Redis: p50 ms  p99 ms   at Kafka: p50 ms  p99 ms   worker CPU"
    )
    for r in results:
        log(
            f"{r.clients:7d}  {r.readings:13,d}  {r.p50:7.0f}  {r.p99:7.0f}  {r.max:7.0f}  "
            f"{r.cpu_pct:7.0f}%  {r.rss_mib:5.0f} MiB  {r.dropped:8d}"
            f"             {r.redis_p50:6.0f}  {r.redis_p99:6.0f}"
            f"             {r.kafka_p50:6.0f}  {r.kafka_p99:6.0f}   {r.worker_cpu_pct:9.0f}%"
        )
    log(
        "(latency per reading, over all clients; web CPU: % of one core over the window; "
        "'at Redis': the same readings at a plain subscriber of iot:live:readings, i.e. "
        "the pipeline before the web process; 'at Kafka': at a plain consumer of the telemetry "
        "topic, i.e. what the edge gateway adds)"
    )


if __name__ == "__main__":
    main()
