"""The daemon on a real private dbus-daemon: methods, properties, signals, errors, history."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import time

from dbus_next import MessageType

from listend.bus import BUS_NAME, INTERFACE
from listend.dbusio import MessageBus
from tests.support.audio import words
from tests.support.bus import BusClient, ctl, daemon_env


def history_files(state):
    d = state / "listend" / "history"
    return d, sorted(d.glob("*.jsonl"))


def test_full_interface_and_listenctl(start_daemon, private_bus, tmp_path, two_utterances_wav):
    state = tmp_path / "state"
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--source", str(two_utterances_wav), env=env)

    async def scenario():
        async with BusClient(private_bus.address) as c:
            assert await c.prop("State") == "idle"
            assert await c.prop("Profile") == "full"
            assert await c.prop("LiveText") == ""
            assert await c.prop("LastError") == ""
            assert await c.prop("RssBytes") > 50 * 2**20
            reply = await c.call("Start")
            assert reply.message_type == MessageType.METHOD_RETURN
            await c.wait_for(
                lambda: (
                    len(c.named("SegmentRefined")) == 2
                    and [s.body[0] for s in c.named("StateChanged")][-1:] == ["idle"]
                )
            )
            refined = c.named("SegmentRefined")
            ids = [s.body[0] for s in refined]
            assert ids == sorted(ids) and ids[0] >= 1
            for s in refined:
                seg_id, start, end, text = s.body
                assert time.time() - 120 < start < end <= time.time()
                partial_positions = [
                    i for i, m in enumerate(c.signals) if m.member == "PartialText" and m.body[0] == seg_id
                ]
                assert partial_positions and max(partial_positions) < c.signals.index(s)
            assert "quarterly" in refined[0].body[3].lower() and "weather" in refined[1].body[3].lower()
            assert [s.body[0] for s in c.named("StateChanged")] == ["listening", "idle"]
            changed = [m.body[1] for m in c.named("PropertiesChanged")]
            assert any("LiveText" in ch and ch["LiveText"].value for ch in changed)
            assert any("State" in ch for ch in changed)

            transcript = (await c.call("GetTranscript", "tu", [0, 0])).body[0]
            assert [row[0] for row in transcript] == ids
            assert [row[3] for row in transcript] == [s.body[3] for s in refined]
            assert (await c.call("GetTranscript", "tu", [ids[0], 1])).body[0][0][0] == ids[1]
            assert [r[0] for r in (await c.call("GetRecent", "u", [1])).body[0]] == [ids[1]]

            memory = (await c.call("GetMemory")).body[0]
            for key in (
                "rss_bytes",
                "peak_rss_bytes",
                "warn_bytes",
                "cleanup_bytes",
                "limit_bytes",
                "audio_buffer_bytes",
                "queue_live",
                "queue_refine",
                "cleanups",
                "degradations",
                "overflows",
                "live_commits",
            ):
                assert key in memory, key
            assert memory["rss_bytes"].value > 0 and memory["warn_bytes"].value < memory["limit_bytes"].value

            assert (await c.call("SetProfile", "s", ["lightweight"])).message_type == MessageType.METHOD_RETURN
            assert await c.prop("Profile") == "lightweight"
            # The reply comes when the switch is done; its PropertiesChanged follows from the event path.
            await c.wait_for(lambda: any("Profile" in m.body[1] for m in c.named("PropertiesChanged")), 30)
            assert (await c.call("Toggle")).body == [True]
            assert await c.prop("State") == "listening"
            assert (await c.call("Toggle")).body == [False]
            assert await c.prop("State") == "idle"
            return ids, refined

    ids, refined = asyncio.run(scenario())

    # listenctl reads the same bus.
    r = ctl(env, "status")
    assert r.returncode == 0 and "state: idle" in r.stdout and "profile: lightweight" in r.stdout
    r = ctl(env, "transcript", "--json")
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and [x["id"] for x in lines][:2] == ids
    r = ctl(env, "transcript", "--last", "1")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1
    r = ctl(env, "memory", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["profile"] == "lightweight"
    r = ctl(env, "profile", "full")
    assert r.returncode == 0 and r.stdout.strip() == "full"
    r = ctl(env, "live")
    assert r.returncode == 0
    # The last session (the Toggle above) heard nothing: copy --session says so, not "nothing to copy yet".
    r = ctl(env, "copy", "--session")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nothing was said since the last start" in r.stderr
    no_display = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = ctl(no_display, "copy")  # the last segment, but no clipboard: one line, not the clipboard's log line too
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot copy: no clipboard" in r.stderr, r.stderr

    # History: one fsynced JSON line per segment, private modes.
    hdir, files = history_files(state)
    assert stat.S_IMODE(os.stat(hdir).st_mode) == 0o700
    assert files and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    stored = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert [s["id"] for s in stored][:2] == ids

    # A second instance is refused with the owner's pid.
    second = start_daemon(env=env, ready=False)
    assert second.proc.wait(120) == 1
    assert f"listend is already running (pid {daemon.proc.pid})" in second.log()

    assert daemon.terminate() == 0
    assert "stopped" in daemon.log() and "Traceback" not in daemon.log()


def test_bad_calls_get_dbus_errors_and_change_nothing(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon(env=env)

    async def scenario():
        async with BusClient(private_bus.address) as c:

            async def error_of(member, sig="", body=None, iface=INTERFACE):
                reply = await c.call(member, sig, body, iface)
                assert reply.message_type == MessageType.ERROR, (member, reply.body)
                assert "Traceback" not in str(reply.body)
                return reply.error_name

            assert await error_of("SetProfile", "s", ["turbo"]) == "io.github.listend.Error.InvalidArgs"
            assert await error_of("SetProfile", "s", [""]) == "io.github.listend.Error.InvalidArgs"
            assert await error_of("GetTranscript", "tu", [0, 4_000_000_000]) == "io.github.listend.Error.InvalidArgs"
            assert await error_of("GetRecent", "u", [10**9]) == "io.github.listend.Error.InvalidArgs"
            assert await error_of("SetDelivery", "s", ["telepathy"]) == "io.github.listend.Error.InvalidArgs"
            assert await error_of("SetDelivery", "s", ["x" * 100_000]) == "io.github.listend.Error.InvalidArgs"
            assert (await error_of("GetTranscript", "s", ["zero"])).startswith("org.freedesktop.DBus.Error")
            assert (await error_of("SetProfile", "i", [3])).startswith("org.freedesktop.DBus.Error")
            assert (await error_of("NoSuchMethod")) == "org.freedesktop.DBus.Error.UnknownMethod"
            assert (
                await error_of("Get", "ss", [INTERFACE, "Nope"], iface="org.freedesktop.DBus.Properties")
            ).startswith("org.freedesktop.DBus.Error")
            assert (
                await error_of(
                    "Set",
                    "ssv",
                    [INTERFACE, "State", __import__("dbus_next").Variant("s", "x")],
                    iface="org.freedesktop.DBus.Properties",
                )
            ).startswith("org.freedesktop.DBus.Error")
            # Still serving, nothing changed.
            assert await c.prop("Profile") == "full" and await c.prop("State") == "idle"
            assert await c.prop("Delivery") == "auto" and await c.prop("PendingSegments") == 0
            # No microphone on this machine: Start says so with NotAvailable and the state shows it.
            reply = await c.call("Start")
            if reply.message_type == MessageType.ERROR:
                assert reply.error_name == "io.github.listend.Error.NotAvailable"
                assert await c.prop("State") == "error" and await c.prop("LastError")
            else:
                await c.call("Stop")

    asyncio.run(scenario())
    r = ctl(env, "profile", "turbo")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = ctl(env, "transcript", "--last", "-3")
    assert r.returncode == 2
    r = ctl(env, "status")
    assert r.returncode == 0
    assert "delivery: auto" in r.stdout and "input method: not running" in r.stdout
    r = ctl(env, "delivery", "clipboard")
    assert r.returncode == 0 and r.stdout.strip() == "clipboard"
    assert ctl(env, "delivery").stdout.strip() == "clipboard"
    r = ctl(env, "delivery", "telepathy")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    assert daemon.terminate() == 0


def test_listenctl_when_daemon_is_not_running(private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    for args in (["status"], ["start"], ["transcript"], ["memory"]):
        r = ctl(env, *args)
        assert r.returncode == 1 and "listend is not running" in r.stderr, (args, r.stderr)
    r = ctl(env)
    assert r.returncode == 2
    r = ctl(env, "frobnicate")
    assert r.returncode == 2
    r = ctl(env, "--help")
    assert r.returncode == 0 and "transcript" in r.stdout
    r = ctl(env, "--version")
    assert r.returncode == 0 and re.fullmatch(r"listenctl \d+\.\d+\.\d+\n", r.stdout)
    r = ctl(env, "--bogus")
    assert r.returncode == 2 and r.stderr == "listenctl: unknown option '--bogus' (see --help)\n"
    r = ctl(env)
    assert r.returncode == 2 and "which command?" in r.stderr and "transcript" in r.stderr
    # Usage errors are found before the bus is asked (listend is not running here: that would be exit 1).
    for args in (["transcript", "--last", "-3"], ["transcript", "--type"], ["status", "--bogus"]):
        r = ctl(env, *args)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "not running" not in r.stderr, (args, r)


def test_sigterm_drains_history_survives_restart_and_torn_line(start_daemon, private_bus, tmp_path, two_utterances_wav):
    state = tmp_path / "state"
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--source", str(two_utterances_wav), "--start", env=env)
    follower_log = open(tmp_path / "follow.out", "w")
    import subprocess

    from tests.support.processes import BIN

    follower = subprocess.Popen(
        [str(BIN / "listenctl"), "transcript", "--follow", "--since", "0", "--json"],
        env=env,
        stdout=follower_log,
        stderr=subprocess.STDOUT,
    )

    async def until_second_utterance_is_open():
        async with BusClient(private_bus.address) as c:
            await c.wait_for(lambda: any(m.body[0] > 1 and m.body[1] for m in c.named("PartialText")))

    asyncio.run(until_second_utterance_is_open())
    # SIGTERM while the second utterance is open: it must still be finished and stored.
    assert daemon.terminate() == 0
    follower.wait(30)
    follower_log.close()
    followed = [json.loads(line) for line in (tmp_path / "follow.out").read_text().splitlines() if line.startswith("{")]
    hdir, files = history_files(state)
    stored = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(stored) == 2, stored
    # The open utterance was cut by SIGTERM: what was heard of it is refined and stored.
    assert words(stored[1]["text"]) and stored[1]["id"] > stored[0]["id"]
    assert [s["id"] for s in followed] == [s["id"] for s in stored]

    # A crash left a torn line; the next start skips it and continues the ids.
    with open(files[-1], "a") as f:
        f.write('{"id": 99, "start": 17')
    daemon = start_daemon("--source", str(two_utterances_wav), "--start", env=env)

    async def after_restart():
        async with BusClient(private_bus.address) as c:
            old = (await c.call("GetTranscript", "tu", [0, 0])).body[0]
            assert [r[0] for r in old] == [s["id"] for s in stored]
            await c.wait_for(lambda: len(c.named("SegmentRefined")) >= 1)
            return c.named("SegmentRefined")[0].body[0]

    new_id = asyncio.run(after_restart())
    assert new_id > max(s["id"] for s in stored)
    assert daemon.terminate() == 0
    stored = [line for f in files for line in f.read_text().splitlines()]
    assert any(str(new_id) in line for line in stored)


def test_monitor_finds_the_daemon_without_the_bus(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    daemon = start_daemon("--lightweight", env=env)
    csv_path, png = tmp_path / "rss.csv", tmp_path / "rss.png"
    r = ctl(env, "monitor", "--count", "3", "--interval", "0.2", "--csv", str(csv_path), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("time,elapsed_s,pid,rss_bytes") and len(rows) == 4
    assert all(int(row.split(",")[2]) == daemon.proc.pid for row in rows[1:])
    assert all(int(row.split(",")[3]) > 50 * 2**20 for row in rows[1:])
    from PIL import Image

    assert Image.open(png).size == (960, 540)
    r = ctl(env, "monitor", str(daemon.proc.pid), "--count", "1", "--interval", "0.1")
    assert r.returncode == 0 and str(daemon.proc.pid) in r.stdout
    # Bad output paths: one line, exit 2, before any sampling.
    for args, message in (
        (["--plot", "/nonexistent/x.png"], "no such directory"),
        (["--csv", "/nonexistent/x.csv"], "no such directory"),
        (["--plot", str(tmp_path / "x.txt")], "ending in .png"),
        (["--csv", str(tmp_path)], "is a directory"),
    ):
        started = time.monotonic()
        r = ctl(env, "monitor", "--interval", "5", "--count", "1", *args)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert time.monotonic() - started < 4  # refused before the first 5 s sample
    assert daemon.terminate() == 0
    # This session's bus has no listend now; any other listend on the machine is not picked up.
    r = ctl(env, "monitor", "--count", "1")
    assert r.returncode == 1 and "not on this session's bus" in r.stderr

    async def squatted() -> subprocess.CompletedProcess[str]:
        squatter = await MessageBus(bus_address=private_bus.address).connect()  # this test's process: not listend
        try:
            await squatter.request_name(BUS_NAME)
            return await asyncio.to_thread(ctl, env, "monitor", "--count", "1")
        finally:
            squatter.disconnect()

    r = asyncio.run(squatted())  # a process holding listend's name is named and not watched
    assert r.returncode == 1 and f"pid {os.getpid()}" in r.stderr and "which is not listend" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "elapsed" not in r.stdout


def test_follow_prints_only_new_segments_and_old_times_carry_their_date(start_daemon, private_bus, tmp_path):
    import subprocess

    from tests.support.processes import BIN

    state = tmp_path / "state"
    history = state / "listend" / "history"
    history.mkdir(parents=True)
    earlier = time.time() - 20 * 86400  # another day, inside the 30-day retention
    (history / time.strftime("%Y-%m-%d.jsonl", time.localtime(earlier))).write_text(
        json.dumps({"id": 1, "start": earlier, "end": earlier + 1, "text": "an old sentence"}) + "\n"
    )
    (history / time.strftime("%Y-%m-%d.jsonl")).write_text(
        json.dumps({"id": 2, "start": time.time(), "end": time.time() + 1, "text": "from today"}) + "\n"
    )
    env = daemon_env(private_bus, state)
    daemon = start_daemon("--lightweight", env=env)
    # Sizes are MiB everywhere, and say so.
    assert "MiB" in ctl(env, "status").stdout and " MB" not in ctl(env, "status").stdout
    memory = ctl(env, "memory").stdout
    assert "rss_bytes:" in memory and "MiB" in memory and " MB" not in memory
    lines = ctl(env, "transcript").stdout.splitlines()
    old_day = time.strftime("%Y-%m-%d", time.localtime(earlier))
    assert lines[0].split("\t")[1].startswith(old_day + " ")  # another day: dated
    assert len(lines[1].split("\t")[1]) == 8  # today: the time alone
    for args, expected in ((["--follow"], ""), (["--follow", "--last", "1"], "from today")):
        follower = subprocess.Popen(
            [str(BIN / "listenctl"), "transcript", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)
        follower.terminate()
        out, _err = follower.communicate(10)
        assert [line.split("\t")[-1] for line in out.splitlines()] == ([expected] if expected else []), out
    assert daemon.terminate() == 0
