"""Group commit: what arrives while a batch is written goes in the next one; each caller gets
its own result or error; same keys never share a batch; a failed batch is retried one at a
time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from chassis.batching import GroupCommit, first_of


class Recorder:
    """A write that records its batches, can be held until released, and fails on request."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_batch_with: Exception | None = None

    def write(self, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(5)
        if self.fail_batch_with is not None and len(items) > 1:
            raise self.fail_batch_with
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


def during_a_write(
    recorder: Recorder, group: GroupCommit[str, str], first: str, rest: Sequence[str]
) -> list[object]:
    """Submit `first`; while its batch is being written, submit `rest`; then let it finish.
    Every caller's result or error, in order."""
    recorder.release.clear()

    async def main() -> list[object]:
        task = asyncio.create_task(group.submit(first))
        await asyncio.to_thread(recorder.started.wait, 5)
        others = [asyncio.create_task(group.submit(item)) for item in rest]
        await asyncio.sleep(0)  # each has queued its item
        recorder.release.set()
        return await asyncio.gather(task, *others, return_exceptions=True)

    return asyncio.run(main())


def test_an_idle_caller_is_written_at_once_alone() -> None:
    recorder = Recorder()

    async def main() -> str:
        group: GroupCommit[str, str] = GroupCommit("t", recorder.write)
        return await asyncio.wait_for(group.submit("a"), 2)

    assert asyncio.run(main()) == "A"
    assert recorder.batches == [["a"]]


def test_what_arrives_during_a_write_shares_the_next_batch() -> None:
    recorder = Recorder()
    results = during_a_write(recorder, GroupCommit("t", recorder.write), "a", "bcd")
    assert results == ["A", "B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


def test_each_caller_gets_its_own_error() -> None:
    recorder = Recorder()
    results = during_a_write(recorder, GroupCommit("t", recorder.write), "a", ["b", "bad-c", "d"])
    assert results[:2] == ["A", "B"] and results[3] == "D"
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad-c"
    assert recorder.batches == [["a"], ["b", "bad-c", "d"]], "one batch, three answers"


def test_items_with_the_same_key_never_share_a_batch() -> None:
    recorder = Recorder()
    group: GroupCommit[str, str] = GroupCommit("t", recorder.write, key=lambda x: x[0])
    results = during_a_write(recorder, group, "x0", ["a1", "a2", "b1", "a3"])
    assert results == ["X0", "A1", "A2", "B1", "A3"]
    assert recorder.batches == [["x0"], ["a1", "b1"], ["a2"], ["a3"]], "in arrival order per key"


def test_a_failed_batch_is_written_again_one_at_a_time() -> None:
    recorder = Recorder()
    recorder.fail_batch_with = RuntimeError("constraint violated")
    results = during_a_write(recorder, GroupCommit("t", recorder.write), "a", "bc")
    assert results == ["A", "B", "C"]
    assert recorder.batches == [["a"], ["b", "c"], ["b"], ["c"]]


def test_the_database_away_fails_every_caller_without_retries() -> None:
    recorder = Recorder()
    recorder.fail_batch_with = sa.exc.OperationalError("SELECT 1", {}, Exception("gone"))
    results = during_a_write(recorder, GroupCommit("t", recorder.write), "a", "bc")
    assert results[0] == "A"
    assert all(isinstance(r, sa.exc.OperationalError) for r in results[1:])
    assert recorder.batches == [["a"], ["b", "c"]]


def test_first_of_raises_the_error_of_a_batch_of_one() -> None:
    assert first_of(["x"]) == "x"
    with pytest.raises(KeyError):
        first_of([KeyError("k")])


def test_a_lost_race_of_the_whole_batch_is_written_again_one_at_a_time() -> None:
    """A deadlock is an OperationalError too, but the database is not away: the batch is
    written again one at a time, not failed for every caller."""
    recorder = Recorder()
    deadlock = Exception("deadlock detected")
    deadlock.pgcode = "40P01"  # type: ignore[attr-defined]
    recorder.fail_batch_with = sa.exc.OperationalError("UPDATE", {}, deadlock)
    results = during_a_write(recorder, GroupCommit("t", recorder.write), "a", "bc")
    assert results == ["A", "B", "C"]
    assert recorder.batches == [["a"], ["b", "c"], ["b"], ["c"]]


def test_when_the_writer_itself_fails_every_waiting_caller_hears_of_it() -> None:
    """A bug in the write (not an item's error) ends the writing task: the batch in hand and
    whatever queued behind it all get the error instead of waiting forever."""
    started, release = threading.Event(), threading.Event()

    def broken(items: Sequence[str]) -> list[str]:
        started.set()
        release.wait(5)
        return []  # one result short: the writer is broken

    group: GroupCommit[str, str] = GroupCommit("t", broken)

    async def main() -> Sequence[object]:
        first = asyncio.create_task(group.submit("a"))
        await asyncio.to_thread(started.wait, 5)
        queued = [asyncio.create_task(group.submit(item)) for item in "bc"]
        await asyncio.sleep(0)  # each has queued its item behind the batch being written
        release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 5)
        assert group._task is not None
        await asyncio.gather(group._task, return_exceptions=True)  # the writer's own end
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, AssertionError) for r in results), results
