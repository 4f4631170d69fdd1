"""IBus's address discovery (as libibus's ibus_get_socket_path does it) and its serialised objects."""

from __future__ import annotations

import os
import subprocess

from listend_ime import ibus


def test_the_address_file_is_named_as_libibus_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    mid = ibus.machine_id()
    bus = tmp_path / "ibus" / "bus"
    assert ibus.address_file({"DISPLAY": ":3.0"}) == bus / f"{mid}-unix-3"
    assert ibus.address_file({"DISPLAY": "host:7"}) == bus / f"{mid}-host-7"
    assert ibus.address_file({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":1"}) == bus / f"{mid}-unix-wayland-0"
    assert ibus.address_file({}) == bus / f"{mid}-unix-0"
    assert ibus.address_file({"IBUS_ADDRESS_FILE": "/x/y"}) == ibus.Path("/x/y")


def write_address(path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by ibus-daemon\nIBUS_ADDRESS=unix:abstract=/tmp/ibus-test\nIBUS_DAEMON_PID={pid}\n")


def test_an_address_counts_only_while_its_daemon_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    env = {"DISPLAY": ":9"}
    assert ibus.find_address(env) is None  # no file: no IBus
    write_address(ibus.address_file(env), os.getpid())
    assert ibus.find_address(env) == "unix:abstract=/tmp/ibus-test"
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_address(ibus.address_file(env), gone.pid)
    assert ibus.find_address(env) is None, "a file left by a daemon that is gone"
    assert ibus.find_address({**env, "IBUS_ADDRESS": "unix:path=/run/x"}) == "unix:path=/run/x"


def test_a_fifo_or_garbage_in_place_of_the_file_is_no_address(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    env = {"DISPLAY": ":9"}
    path = ibus.address_file(env)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert ibus.find_address(env) is None  # and it did not block on the FIFO
    path.unlink()
    path.write_bytes(b"\xff\xfe IBUS_ADDRESS=\nIBUS_DAEMON_PID=notanumber\n")
    assert ibus.find_address(env) is None


def test_serialised_objects_have_ibus_shapes():
    text = ibus.text("héllo", underline=True)
    assert text.signature == "(sa{sv}sv)"
    assert ibus.text_of(text) == "héllo"
    attrs = text.value[3].value[2]
    assert [a.value[2:] for a in attrs] == [[ibus.ATTR_UNDERLINE, ibus.UNDERLINE_SINGLE, 0, 5]]  # in characters
    assert ibus.text_of("not a text") == ""
    desc = ibus.EngineDesc("listend", "long", "about", symbol="S").variant()
    assert desc.signature == "(sa{sv}ssssssssussssssss)" and ibus.engine_name_of(desc) == "listend"
    assert desc.value[10] == 0 and desc.value[12] == "S"  # the rank, then hotkeys and the symbol
    component = ibus.component("c", "d", "1", [ibus.EngineDesc("e", "l", "d")])
    assert component.signature == "(sa{sv}ssssssssavav)" and len(component.value[-1]) == 1
    assert ibus.prop("k", "label", "tip", "S").signature == "(sa{sv}suvsvbbuvv)"


def test_the_guard_wakes_when_the_process_it_watches_ends_and_not_before():
    import threading

    from listend_ime.guard import wait_for_exit

    child = subprocess.Popen(["sleep", "30"])
    woke = threading.Event()
    watcher = threading.Thread(target=lambda: (wait_for_exit(child.pid), woke.set()), daemon=True)
    watcher.start()
    assert not woke.wait(0.3), "the process still runs"
    child.kill()  # SIGKILL: what the guard is for
    assert woke.wait(10)
    child.wait()
    wait_for_exit(child.pid)  # a pid that is gone returns at once


def test_the_written_down_engine_must_be_one_short_line_and_never_ours(tmp_path, monkeypatch):
    from listend_ime import previous

    monkeypatch.setattr(previous, "previous_engine_file", lambda: tmp_path / "ime-previous-engine")
    assert previous.read_previous() == ""
    previous.write_previous("xkb:de::ger")
    assert previous.read_previous() == "xkb:de::ger"
    assert (tmp_path / "ime-previous-engine").stat().st_mode & 0o777 == 0o600
    (tmp_path / "ime-previous-engine").write_text("listend")
    assert previous.read_previous() == ""
    (tmp_path / "ime-previous-engine").write_text("x\x1b[2J")
    assert previous.read_previous() == ""
