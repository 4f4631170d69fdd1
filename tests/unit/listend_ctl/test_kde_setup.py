"""listenctl's KDE step and listend-ime's reading of KWin, as plain logic: kwinrc line edits, the choices, replies."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from dbus_next import Variant

from listend_ctl import kde
from listend_ime import kwin

ENTRY = Path("/home/u/.local/share/applications/listend-ibus-wayland.desktop")
PLASMA = {"XDG_CURRENT_DESKTOP": "KDE", "XDG_CONFIG_DIRS": "/nonexistent-xdg"}


def test_kwinrc_edits_touch_only_the_input_method_line():
    users = "# mine\n[Compositing]\nBackend=OpenGL\n\n[Wayland]\nVirtualKeyboardEnabled=true\n\n[Xwayland]\nScale=1\n"
    assert kde.input_method_of(users) is None
    added = kde.with_input_method(users, ENTRY)
    assert added == users.replace("[Wayland]\n", f"[Wayland]\nInputMethod[$e]={ENTRY}\n")
    assert kde.input_method_of(added) == str(ENTRY)
    assert kde.without_input_method(added, ENTRY) == users
    # Not the [Wayland][Sub] group, not another key that starts alike; a value for someone else stays.
    other = "[Wayland][Sub]\nInputMethod=/x.desktop\n[Wayland]\nInputMethodX=1\n"
    assert kde.input_method_of(other) is None
    theirs = "[Wayland]\nInputMethod[$e]=/usr/share/applications/com.github.maliit.keyboard.desktop\n"
    assert kde.without_input_method(theirs, ENTRY) == theirs


def test_a_kwinrc_created_for_the_setting_goes_when_it_is_removed():
    for start in ("", "[General]\nX=1\n"):
        added = kde.with_input_method(start, ENTRY)
        assert added.endswith(f"[Wayland]\nInputMethod[$e]={ENTRY}\n")
        assert kde.without_input_method(added, ENTRY) == start
    assert kde.input_method_of("[Wayland]\nInputMethod=\n") == ""  # an empty value is no input method
    assert kde.with_input_method("[Wayland]\nInputMethod=\n", ENTRY) == f"[Wayland]\nInputMethod[$e]={ENTRY}\n"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")  # KWin is told nothing here
    exe = tmp_path / "ibus-wayland"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setattr(kde, "IBUS_WAYLAND_PATHS", (str(exe),))
    return tmp_path


def test_the_step_asks_and_respects_the_answer_and_a_users_choice(home):
    kwinrc = home / "config" / "kwinrc"
    assert kde.install_step(True, {"XDG_CURRENT_DESKTOP": "GNOME"}).lines == []  # not Plasma: nothing
    unasked = kde.install_step(None, PLASMA, ask=lambda q: None)
    assert not unasked.changed and f"`listenctl install {kde.FLAG}`" in unasked.lines[0] and not kwinrc.exists()
    declined = kde.install_step(None, PLASMA, ask=lambda q: False)
    assert not declined.changed and not kwinrc.exists() and not kde.desktop_path().exists()

    questions: list[str] = []
    accepted = kde.install_step(None, PLASMA, ask=lambda q: questions.append(q) or True)
    assert accepted.changed and "KWin has no input method" in questions[0]
    assert kde.input_method_of(kwinrc.read_text()) == str(kde.desktop_path())
    assert "X-KDE-Wayland-VirtualKeyboard=true" in kde.desktop_path().read_text()
    assert "could not tell KWin" in accepted.lines[-1]  # no bus here: the next login reads it
    again = kde.install_step(True, PLASMA)
    assert not again.changed and all(line.startswith("unchanged") for line in again.lines)

    removed = kde.uninstall_step()
    assert removed.changed and not kwinrc.exists() and not kde.desktop_path().exists()
    assert not kde.uninstall_step().lines  # nothing of ours left

    kwinrc.write_text("[Wayland]\nInputMethod[$e]=/usr/share/applications/fcitx5-wayland-launcher.desktop\n")
    kept = kde.install_step(True, PLASMA)
    assert not kept.changed and "already set" in kept.lines[0] and "fcitx5" in kwinrc.read_text()
    assert not kde.uninstall_step().changed and "fcitx5" in kwinrc.read_text()


def test_a_system_wide_input_method_is_kept(home):
    system = home / "xdg"
    system.mkdir()
    (system / "kwinrc").write_text("[Wayland]\nInputMethod=/usr/share/applications/maliit.desktop\n")
    kept = kde.install_step(True, {**PLASMA, "XDG_CONFIG_DIRS": str(system)})
    assert not kept.changed and "maliit" in kept.lines[0] and not (home / "config" / "kwinrc").exists()


def test_without_ibus_wayland_the_step_names_the_package(home, monkeypatch):
    monkeypatch.setattr(kde, "IBUS_WAYLAND_PATHS", (str(home / "absent"),))
    result = kde.install_step(True, PLASMA)
    assert not result.changed and "ibus-wayland" in result.lines[0] and not kde.desktop_path().exists()


def test_kwins_reply_is_read_only_in_its_own_types():
    props = {name: Variant("b", False) for name in kwin.PROPERTIES.values()}
    missing = kwin.parse_properties("a{sv}", [{**props, "enabled": Variant("b", True)}])
    assert missing.missing and missing.enabled is True and missing.reason == "KWin has no input method"
    present = kwin.parse_properties("a{sv}", [{**props, "available": Variant("b", True)}])
    assert not present.missing and present.reason == "KWin has an input method"
    odd = kwin.parse_properties("a{sv}", [{**props, "available": Variant("u", 0)}])
    assert odd.kwin_wayland and odd.available is None and not odd.missing
    assert not kwin.parse_properties("s", ["x"]).missing
    assert not kwin.not_kwin("why").missing


def test_a_kwinrc_that_is_no_small_file_is_one_line_and_a_linked_one_is_written_where_it_points(home):
    config = home / "config"
    config.mkdir()
    kwinrc = config / "kwinrc"
    os.mkfifo(kwinrc)  # an open() for reading would never return
    fifo = kde.install_step(True, PLASMA)
    assert not fifo.changed and "not a regular file" in fifo.lines[0] and not kde.desktop_path().exists()
    assert "not a regular file" in kde.uninstall_step().lines[0]
    kwinrc.unlink()

    dotfiles = home / "dotfiles" / "kwinrc"
    dotfiles.parent.mkdir()
    dotfiles.write_text("[Windows]\nPlacement=Centered\n")
    os.chmod(dotfiles, 0o640)
    kwinrc.symlink_to(dotfiles)
    assert kde.install_step(True, PLASMA).changed
    assert kwinrc.is_symlink() and kde.input_method_of(dotfiles.read_text()) == str(kde.desktop_path())
    assert stat.S_IMODE(dotfiles.stat().st_mode) == 0o640  # the user's file keeps its mode
    assert stat.S_IMODE(kde.desktop_path().stat().st_mode) == 0o644
    assert kde.uninstall_step().changed
    assert kwinrc.is_symlink() and dotfiles.read_text() == "[Windows]\nPlacement=Centered\n"
