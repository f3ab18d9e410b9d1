"""A background task of the gateway that dies, or ends while the gateway runs, is a failure that
makes the gateway unready; tasks ending because the gateway stops are not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge_gateway.app import EdgeGateway, TaskSupervisor
from edge_gateway.settings import EdgeSettings


async def forever() -> None:
    await asyncio.Event().wait()


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "task_failed"]


async def settle(supervisor: TaskSupervisor, name: str) -> None:
    task = supervisor.get(name)
    assert task is not None
    await asyncio.wait({task}, timeout=5)
    assert task.done()
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration


async def test_a_task_that_raises_has_failed(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = TaskSupervisor()

    async def broken() -> None:
        raise RuntimeError("leased records missing from the file")

    supervisor.spawn("forwarder", broken())
    await settle(supervisor, "forwarder")
    assert supervisor.failed == {"forwarder": "RuntimeError: leased records missing from the file"}
    (record,) = failures(caplog)
    assert record.levelno == logging.ERROR
    assert record.__dict__["task"] == "forwarder"
    assert record.__dict__["error"] == "RuntimeError: leased records missing from the file"


async def test_a_task_that_returns_while_running_has_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = TaskSupervisor()

    async def quits() -> None:
        return None

    supervisor.spawn("heartbeat", quits())
    await settle(supervisor, "heartbeat")
    assert supervisor.failed == {"heartbeat": "returned while the gateway was running"}
    assert [r.__dict__["task"] for r in failures(caplog)] == ["heartbeat"]


async def test_a_task_cancelled_while_running_has_failed() -> None:
    supervisor = TaskSupervisor()
    supervisor.spawn("simulators", forever())
    task = supervisor.get("simulators")
    assert task is not None
    task.cancel()
    await settle(supervisor, "simulators")
    assert supervisor.failed == {"simulators": "cancelled"}


async def test_tasks_ending_because_the_gateway_stops_are_fine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = TaskSupervisor()
    supervisor.spawn("heartbeat", asyncio.sleep(0))
    supervisor.spawn("simulators", forever())
    supervisor.stopping = True
    simulators = supervisor.get("simulators")
    assert simulators is not None
    simulators.cancel()  # what stop() does to a task that outlives its timeout
    await settle(supervisor, "heartbeat")
    await settle(supervisor, "simulators")
    assert supervisor.failed == {}
    assert failures(caplog) == []


async def test_an_exception_while_stopping_is_still_a_failure() -> None:
    supervisor = TaskSupervisor()
    supervisor.stopping = True

    async def broken() -> None:
        raise OSError(5, "Input/output error")

    supervisor.spawn("forwarder", broken())
    await settle(supervisor, "forwarder")
    assert list(supervisor.failed) == ["forwarder"]


def test_readiness_has_a_tasks_check() -> None:
    gateway = EdgeGateway(EdgeSettings(mqtt_url="mqtt://127.0.0.1:1", http_port=0))
    assert gateway.readiness().checks["tasks"] is True
    gateway.tasks.failed["forwarder"] = "RuntimeError: boom"
    readiness = gateway.readiness()
    assert readiness.checks["tasks"] is False
    assert readiness.ready is False
