"""The keepalive alarm of a WebSocket on trio (sansnet._alarm): it fires at the earliest
deadline armed since it last fired, has a task only while something is armed, and never
fires once stopped. On trio's autojump clock: the deadlines cost no wall time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from sansnet._alarm import Alarm


def run_on_virtual_time(test: object) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def system_tasks() -> list[str]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return [
        task.name
        for nursery in root.child_nurseries
        for task in nursery.child_tasks
        if task.name == "sansnet WebSocket alarm"
    ]


def recording_alarm() -> tuple[Alarm, list[float]]:
    """An alarm whose fire() notes the time it fires at in the list returned."""
    fired: list[float] = []

    async def fire() -> None:
        fired.append(trio.current_time())

    return Alarm(trio, fire), fired


def test_it_fires_at_the_earliest_deadline_armed() -> None:
    async def test() -> None:
        alarm, fired = recording_alarm()
        start = trio.current_time()
        alarm.arm(start + 10)
        alarm.arm(start + 20)  # later: changes nothing
        await trio.sleep(1)
        alarm.arm(start + 5)  # earlier: wakes the sleeping task earlier
        await trio.sleep(30)
        assert fired == [start + 5]  # once, for everything armed before it fired
        assert system_tasks() == []  # nothing armed since: its task has ended

    run_on_virtual_time(test)


def test_arming_from_fire_and_after_it_starts_the_next_round() -> None:
    async def test() -> None:
        fired: list[float] = []
        alarm: Alarm

        async def fire() -> None:
            fired.append(trio.current_time())
            if len(fired) == 1:
                alarm.arm(trio.current_time() + 3)  # from fire(): the same task goes on

        alarm = Alarm(trio, fire)
        start = trio.current_time()
        alarm.arm(start + 2)
        await trio.sleep(10)
        assert fired == [start + 2, start + 5]
        assert system_tasks() == []
        alarm.arm(trio.current_time() + 1)  # a new task for a new deadline
        assert system_tasks() == ["sansnet WebSocket alarm"]
        await trio.sleep(2)
        assert fired == [start + 2, start + 5, start + 11]

    run_on_virtual_time(test)


def test_a_deadline_passed_already_fires_at_once() -> None:
    async def test() -> None:
        alarm, fired = recording_alarm()
        now = trio.current_time()
        alarm.arm(now - 1)
        await trio.testing.wait_all_tasks_blocked()
        assert fired == [now]

    run_on_virtual_time(test)


@pytest.mark.parametrize("armed", [True, False])
def test_stopped_it_never_fires_and_its_task_ends(armed: bool) -> None:
    async def test() -> None:
        alarm, fired = recording_alarm()
        if armed:
            alarm.arm(trio.current_time() + 10)
            await trio.sleep(1)
            assert system_tasks() == ["sansnet WebSocket alarm"]
        alarm.stop()
        alarm.arm(trio.current_time() + 2)  # stopped: starts nothing
        await trio.testing.wait_all_tasks_blocked()
        assert system_tasks() == []
        await trio.sleep(20)
        assert fired == []

    run_on_virtual_time(test)


def test_stopped_while_it_fires_it_ends_after_fire_returns() -> None:
    async def test() -> None:
        fired: list[float] = []
        alarm: Alarm

        async def fire() -> None:
            fired.append(trio.current_time())
            alarm.arm(trio.current_time() + 1)
            alarm.stop()
            await trio.sleep(1)

        alarm = Alarm(trio, fire)
        alarm.arm(trio.current_time() + 1)
        await trio.sleep(10)
        assert len(fired) == 1
        assert system_tasks() == []

    run_on_virtual_time(test)
