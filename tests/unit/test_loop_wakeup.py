"""LoopWakeup: the writer thread's commits wake the forwarder, one call for those that come
while a call waits, and never none after a commit."""

from __future__ import annotations

import asyncio
import threading

from edge_gateway.loop_wakeup import LoopWakeup


async def test_calls_while_one_waits_share_it_and_a_later_call_gets_its_own() -> None:
    loop = asyncio.get_running_loop()
    runs: list[int] = []
    commits = [0]
    wakeup = LoopWakeup(loop, lambda: runs.append(commits[0]))

    def writer(n: int) -> None:
        for _ in range(n):
            commits[0] += 1
            wakeup()

    # The loop is not running callbacks while this thread calls: one wake-up for all 50.
    thread = threading.Thread(target=writer, args=(50,))
    thread.start()
    thread.join()
    await asyncio.sleep(0)
    assert runs == [50]
    assert wakeup.scheduled == 1
    # After it ran, the next commit schedules a call of its own.
    await asyncio.to_thread(writer, 1)
    await asyncio.sleep(0)
    assert runs == [50, 51]
    assert wakeup.scheduled == 2


async def test_every_commit_is_followed_by_a_call_that_sees_it() -> None:
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    committed = [0]
    wakeup = LoopWakeup(loop, lambda: seen.append(committed[0]))

    def writer() -> None:
        for _ in range(2000):
            committed[0] += 1
            wakeup()

    await asyncio.to_thread(writer)
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen
    assert seen[-1] == 2000  # the last commit was covered by a call that ran after it
    assert wakeup.scheduled == len(seen) < 2000
