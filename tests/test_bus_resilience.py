"""The daemon under a busy bus, a lost bus and a damaged history, on a real dbus-daemon."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from dbus_next import Message, MessageType

from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH
from tests.support.bus import BusClient, daemon_env


def test_five_thousand_pipelined_calls_leave_the_daemon_answering(start_daemon, private_bus, tmp_path):
    """dbus-next took EAGAIN on send for a disconnect: the daemon left the bus and exited 0."""
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", env=env)

    async def flood():
        async with BusClient(private_bus.address) as c:
            # Queue every call before reading any reply: the replies fill the daemon's socket.
            for _ in range(5000):
                c.bus.send(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="GetMemory"))
            last = await asyncio.wait_for(c.call("GetMemory"), 120)  # answered after all 5 000
            assert last.message_type == MessageType.METHOD_RETURN, last.body
        # A fresh client after the flood: the daemon is still there and answers.
        async with BusClient(private_bus.address) as c:
            # An oversized argument is refused with a short error, not echoed back whole.
            huge = await c.call("SetProfile", "s", ["x" * 10_000_000])
            assert huge.message_type == MessageType.ERROR
            assert huge.error_name == "io.github.listend.Error.InvalidArgs" and len(huge.body[0]) < 1000
            reply = await asyncio.wait_for(c.call("GetMemory"), 30)
            assert reply.message_type == MessageType.METHOD_RETURN, reply.body
            return reply.body[0]

    memory = asyncio.run(flood())
    assert memory["profile"].value == "lightweight"
    assert daemon.proc.poll() is None, daemon.log()
    assert "lost the D-Bus connection" not in daemon.log()
    assert daemon.terminate() == 0


def test_big_transcripts_do_not_starve_small_calls(start_daemon, private_bus, tmp_path):
    state = tmp_path / "state"
    history = state / "listend" / "history"
    history.mkdir(parents=True)
    now = time.time()
    with open(history / time.strftime("%Y-%m-%d.jsonl"), "w") as f:
        f.writelines(
            json.dumps(
                {"id": i, "start": now, "end": now + 1, "text": f"segment {i} with a sentence of ordinary length in it"}
            )
            + "\n"
            for i in range(1, 10_001)
        )
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--lightweight", env=env)

    async def scenario():
        async with BusClient(private_bus.address) as c:
            order = []

            async def call(name, member, signature="", body=None):
                reply = await c.call(member, signature, body)
                assert reply.message_type == MessageType.METHOD_RETURN, reply.body
                order.append(name)
                return reply

            # Eight big fetches queued first, then one small call behind them.
            big = [asyncio.create_task(call(f"transcript{i}", "GetTranscript", "tu", [0, 100_000])) for i in range(8)]
            await asyncio.sleep(0)
            small = asyncio.create_task(call("memory", "GetMemory"))
            replies = await asyncio.gather(*big)
            await small
            return order, [len(r.body[0]) for r in replies]

    order, sizes = asyncio.run(scenario())
    assert sizes == [10_000] * 8
    # The small call was not held in line behind every big reply being marshalled.
    assert order.index("memory") < len(order) - 1, order
    assert daemon.terminate() == 0


def test_losing_the_bus_is_logged_and_exits_non_zero(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", env=env)
    os.kill(private_bus.pid, signal.SIGKILL)
    code = daemon.proc.wait(60)
    assert code == 1, daemon.log()
    assert "lost the D-Bus connection" in daemon.log()


def test_damaged_history_starts_and_ids_continue_above_the_highest_valid(
    start_daemon, private_bus, tmp_path, speech_wav
):
    state = tmp_path / "state"
    history = state / "listend" / "history"
    history.mkdir(parents=True)
    today = time.strftime("%Y-%m-%d.jsonl")

    def good(i):
        return json.dumps({"id": i, "start": time.time(), "end": time.time() + 1, "text": f"good {i}"})

    (history / today).write_text(
        "\n".join(
            [
                good(3),
                '{"id": 1e999, "start": 1, "end": 2, "text": "x"}',
                "[" * 100_000,
                json.dumps({"id": 2**64 - 1, "start": 1.0, "end": 2.0, "text": "x"}),
                good(12),
            ]
        )
        + "\n"
    )
    (history / "2099-01-01.jsonl").write_text(good(8) + "\n")
    os.chmod(history / today, 0o644)
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--source", str(speech_wav), "--start", env=env)

    async def scenario():
        async with BusClient(private_bus.address) as c:
            transcript = await c.call("GetTranscript", "tu", [0, 0])
            assert transcript.message_type == MessageType.METHOD_RETURN, transcript.body
            assert await c.prop("LastSegmentId") >= 12
            await c.wait_for(lambda: c.named("SegmentRefined"), timeout=120)
            memory = (await c.call("GetMemory")).body[0]
            return (
                [row[0] for row in transcript.body[0]],
                c.named("SegmentRefined")[0].body[0],
                memory["history_skipped_lines"].value,
            )

    old, new_id, skipped = asyncio.run(scenario())
    assert sorted(old) == [3, 8, 12] and new_id == 13 and skipped == 3
    assert os.stat(history / today).st_mode & 0o777 == 0o600
    assert daemon.terminate() == 0


def test_twenty_clients_fetching_the_whole_history_stay_inside_the_memory_limit(start_daemon, private_bus, tmp_path):
    """20 concurrent GetTranscript(0, 100000) once took RSS from 166 to 727 MiB and GetMemory to 4.9 s."""
    import psutil

    from listend.config import build_settings

    state = tmp_path / "state"
    history = state / "listend" / "history"
    history.mkdir(parents=True)
    now = time.time()
    with open(history / time.strftime("%Y-%m-%d.jsonl"), "w") as f:
        for i in range(1, 100_001):
            f.write(
                json.dumps(
                    {
                        "id": i,
                        "start": now,
                        "end": now + 1,
                        "text": f"segment {i} with a sentence of ordinary length in it",
                    }
                )
                + "\n"
            )
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--lightweight", env=env)
    process = psutil.Process(daemon.proc.pid)
    limit = build_settings("lightweight").memory.limit_mb * 2**20

    async def scenario():
        async with BusClient(private_bus.address) as c:
            order: list[str] = []
            peak = process.memory_info().rss

            async def fetch(i: int) -> int:
                reply = await c.call("GetTranscript", "tu", [0, 100_000])
                assert reply.message_type == MessageType.METHOD_RETURN, reply.body
                order.append(f"transcript{i}")
                return len(reply.body[0])

            fetches = [asyncio.create_task(fetch(i)) for i in range(20)]
            await asyncio.sleep(0.2)
            memory = asyncio.create_task(c.call("GetMemory"))
            while not all(t.done() for t in fetches):
                peak = max(peak, process.memory_info().rss)
                if memory.done() and "memory" not in order:
                    order.append("memory")
                await asyncio.sleep(0.05)
            sizes = await asyncio.gather(*fetches)
            await memory
            return sizes, order, peak

    sizes, order, peak = asyncio.run(scenario())
    assert sizes == [100_000] * 20
    assert peak < limit, f"peak RSS {peak / 2**20:.0f} MiB over the limit {limit / 2**20:.0f} MiB"
    assert "memory" in order  # answered while the big replies were still going out
    assert daemon.terminate() == 0
