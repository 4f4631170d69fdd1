"""Reading listend's own files with suspicion, and trusting only this user's runtime directory and sockets."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from listend import bus, paths
from listend.files import UnsafeFile, make_private, read_regular, write_private
from listend.models import tighten


def test_read_regular_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"fine")
    assert read_regular(tmp_path / "ok", 10) == b"fine"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFile, match="not a regular file"):
        read_regular(fifo, 10)  # returns at once: opened without blocking
    with pytest.raises(UnsafeFile, match="not a regular file"):
        read_regular("/dev/zero", 10)
    with pytest.raises(UnsafeFile, match="larger than"):
        read_regular(tmp_path / "ok", 3)
    (tmp_path / "link").symlink_to(tmp_path / "ok")
    assert read_regular(tmp_path / "link", 10) == b"fine"
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_regular(tmp_path / "link", 10, follow_symlinks=False)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", 10)


def test_write_private_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    planted = tmp_path / "dir" / "token"
    planted.parent.mkdir()
    planted.symlink_to(victim)
    write_private(planted, b"new")
    assert victim.read_text() == "precious" and not planted.is_symlink() and planted.read_bytes() == b"new"
    assert stat.S_IMODE(planted.stat().st_mode) == 0o600
    assert [p.name for p in planted.parent.iterdir()] == ["token"]  # no temporary left behind


def test_write_private_gives_exactly_the_mode_asked_whatever_the_umask(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    entry, token = folder / "entry.desktop", folder / "token"
    folder.mkdir()
    old = os.umask(0o077)
    try:
        write_private(entry, b"[Desktop Entry]\n", mode=0o644)  # a desktop entry others may read
        token.write_bytes(b"x")
        os.chmod(token, 0o666)
        write_private(token, b"y")
    finally:
        os.umask(old)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644 and entry.read_bytes() == b"[Desktop Entry]\n"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_bytes() == b"y"
    assert sorted(p.name for p in folder.iterdir()) == ["entry.desktop", "token"]  # no temporary left behind


def test_make_private_repairs_an_open_file_and_never_changes_modes_through_a_link(tmp_path: Path) -> None:
    open_file, elsewhere = tmp_path / "open", tmp_path / "elsewhere"
    for path in (open_file, elsewhere):
        path.write_text("x")
        os.chmod(path, 0o644)
    (tmp_path / "link").symlink_to(elsewhere)
    make_private(open_file)
    make_private(tmp_path / "link")
    assert stat.S_IMODE(open_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644  # the link's target is not listend's to change
    with pytest.raises(FileNotFoundError):
        make_private(tmp_path / "missing")  # the caller says whether that is a warning


def test_a_model_directory_left_open_is_tightened_file_by_file_but_not_through_links(tmp_path: Path) -> None:
    model, elsewhere = tmp_path / "model", tmp_path / "elsewhere"
    model.mkdir(mode=0o755)
    os.chmod(model, 0o755)
    (model / "model.bin").write_bytes(b"weights")
    os.chmod(model / "model.bin", 0o644)
    elsewhere.write_text("x")
    os.chmod(elsewhere, 0o644)
    (model / "link").symlink_to(elsewhere)
    tighten(model)
    assert stat.S_IMODE(model.stat().st_mode) == 0o700
    assert stat.S_IMODE((model / "model.bin").stat().st_mode) == 0o600
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644


def test_xdg_variables_that_are_not_absolute_paths_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert paths.state_dir() == tmp_path / ".local" / "state" / "listend"
    assert paths.config_dir() == tmp_path / "cfg" / "listend"


def test_a_runtime_dir_others_can_write_to_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    planted = socket.socket(socket.AF_UNIX)
    planted.bind(str(shared / "bus"))  # anyone could have put it there
    assert paths.trusted_runtime_home() is None
    assert bus.find_session_bus() is None
    assert paths.runtime_dir() == tmp_path / "cache" / "listend" / "run"
    os.chmod(shared, 0o700)
    assert paths.trusted_runtime_home() == shared
    assert bus.find_session_bus() == f"unix:path={shared / 'bus'}"
    planted.close()


def test_a_socket_of_another_user_in_the_runtime_dir_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(runtime / "bus"))
    os.chown(runtime / "bus", 65534, 65534)  # nobody's (the suite runs as root)
    assert bus.find_session_bus() is None
    sock.close()


def test_a_recorded_private_bus_is_used_only_if_the_record_and_its_socket_are_mine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    sock_path = tmp_path / "private-bus"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    record = runtime / "listend" / "bus-address"
    write_private(record, f"unix:path={sock_path},guid=abc\n".encode())
    os.chmod(record.parent, 0o700)
    assert bus.find_session_bus() == f"unix:path={sock_path},guid=abc"
    os.chown(sock_path, 65534, 65534)
    assert bus.find_session_bus() is None  # the socket is someone else's now
    os.chown(sock_path, 0, 0)
    os.chown(record, 65534, 65534)
    assert bus.find_session_bus() is None  # and so is the record
    sock.close()
