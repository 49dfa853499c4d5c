"""PushLimiter: at most `permits` streams build and write at once, and none holds a permit
longer than `patience` (a client that never reads cannot stall everyone else's pushes)."""

from __future__ import annotations

import asyncio

import pytest

from meshward.xds.serving import PushLimiter


@pytest.mark.parametrize(("permits", "works", "expected_peak"), [(1, 4, 1), (2, 5, 2), (8, 3, 3)])
def test_at_most_permits_run_at_once(permits: int, works: int, expected_peak: int) -> None:
    async def scenario() -> tuple[int, list[int]]:
        limiter = PushLimiter(permits, patience=5.0)
        running: set[int] = set()
        peak = 0
        finished: list[int] = []

        async def work(index: int) -> None:
            nonlocal peak
            running.add(index)
            peak = max(peak, len(running))
            await asyncio.sleep(0.01)
            running.discard(index)
            finished.append(index)

        await asyncio.gather(*(limiter.run(work(i)) for i in range(works)))
        return peak, sorted(finished)

    assert asyncio.run(scenario()) == (expected_peak, list(range(works)))


def test_a_stuck_push_gives_its_permit_back_after_patience() -> None:
    async def scenario() -> list[str]:
        limiter = PushLimiter(1, patience=0.05)
        release = asyncio.Event()
        order: list[str] = []

        async def stuck() -> None:
            await release.wait()  # a client that does not read
            order.append("stuck done")

        async def other() -> None:
            order.append("other ran")
            release.set()

        first = asyncio.ensure_future(limiter.run(stuck()))
        await asyncio.sleep(0)
        await asyncio.wait_for(limiter.run(other()), 1.0)
        await asyncio.wait_for(first, 1.0)
        return order

    assert asyncio.run(scenario()) == ["other ran", "stuck done"]


def test_cancelling_the_stream_cancels_its_push() -> None:
    async def scenario() -> tuple[bool, bool]:
        limiter = PushLimiter(1, patience=0.01)
        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        running = asyncio.ensure_future(limiter.run(forever()))
        await asyncio.sleep(0.05)  # past patience: the permit is back, the push still runs
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await asyncio.sleep(0)
        # The permit is free again: the next push runs at once.
        done = asyncio.Event()

        async def quick() -> None:
            done.set()

        await asyncio.wait_for(limiter.run(quick()), 1.0)
        return cancelled.is_set(), done.is_set()

    assert asyncio.run(scenario()) == (True, True)
