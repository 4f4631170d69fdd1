"""systemd unit, sd_notify protocol and watchdog, D-Bus activation, install/uninstall."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from listend_ctl import install
from tests.support.bus import PrivateBus, ctl, daemon_env
from tests.support.processes import BIN, REPO


def test_repository_unit_files_are_the_rendered_ones():
    for name, text in install.render(install.REPO_BIN).items():
        assert (REPO / "systemd" / name).read_text() == text, name


def test_files_other_than_the_unit_name_their_program_without_systemd_specifiers():
    """Desktop entries and D-Bus activation files expand no ``%h``: their Exec is an absolute path as written."""
    for rendered in (install.render(install.REPO_BIN), install.render()):
        for name, text in rendered.items():
            if name == install.UNIT_NAME:
                continue
            exec_lines = [line for line in text.splitlines() if line.startswith("Exec=")]
            assert len(exec_lines) == 1, (name, text)
            program = exec_lines[0].removeprefix("Exec=").split()[0]
            assert program.startswith("/") and "%" not in exec_lines[0], (name, exec_lines)


def _verify(tmp_path: Path, listend: str) -> subprocess.CompletedProcess:
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    unit = unit_dir / "listend.service"
    unit.write_text(install.render(os.path.dirname(listend))["listend.service"])
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60
    )


def test_rendered_unit_passes_systemd_analyze_verify(tmp_path):
    result = _verify(tmp_path, str(BIN / "listend"))
    assert result.returncode == 0, result.stderr
    text = install.render()["listend.service"]
    assert f"ExecStart={BIN / 'listend'} run" in text
    for line in (
        "Type=dbus",
        "BusName=io.github.listend",
        "WatchdogSec=",
        "Restart=on-failure",
        "MemoryHigh=",
        "MemoryMax=",
        "WantedBy=default.target",
    ):
        assert line in text
    assert "\nProtectHome=" not in text
    # The check is real: a missing executable fails it.
    bad = _verify(tmp_path, str(tmp_path / "nowhere" / "listend"))
    assert bad.returncode != 0


class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.address = address
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self) -> list[str]:
        return [m for _, m in self.messages]

    def wait_for(self, prefix: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(m.startswith(prefix) for m in self.lines()):
            assert time.monotonic() < deadline, self.lines()
            time.sleep(0.05)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready_status_watchdog_stopping(start_daemon, private_bus, tmp_path, abstract):
    address = f"@listend-test-{os.getpid()}-{time.monotonic_ns()}" if abstract else str(tmp_path / "notify")
    listener = NotifyListener(address)
    env = daemon_env(private_bus, tmp_path / "state", {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    daemon = start_daemon("--lightweight", env=env, ready=False)
    listener.wait_for("READY=1")
    ready_at = next(t for t, m in listener.messages if m == "READY=1")
    assert ctl(env, "profile", "full").returncode == 0
    listener.wait_for("STATUS=idle, profile full")
    time.sleep(2.5)
    pings = [t for t, m in listener.messages if m == "WATCHDOG=1"]
    assert len(pings) >= 3 and all(t > ready_at for t in pings)
    assert daemon.terminate() == 0
    listener.wait_for("STOPPING=1", timeout=5)
    lines = listener.lines()
    assert lines.index("READY=1") < lines.index("STOPPING=1")
    assert lines[-1].startswith("STATUS=stopping") or "STOPPING=1" in lines[-2:]
    listener.close()


WEDGED = """
import sys, time
import listend.segmenter as seg
def wedged_feed(self, audio):
    time.sleep(3600)  # the VAD (or anything in the engine loop) hangs
seg.Segmenter.feed = wedged_feed
from listend.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_watchdog_pings_stop_when_engine_loop_is_wedged(private_bus, tmp_path, speech_wav):
    address = str(tmp_path / "notify")
    listener = NotifyListener(address)
    env = daemon_env(private_bus, tmp_path / "state", {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    proc = subprocess.Popen(
        [sys.executable, "-c", WEDGED, "run", "--lightweight", "--source", str(speech_wav), "--start"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listener.wait_for("READY=1")
        time.sleep(2.0)  # the first audio reaches the wedged segmenter within ~0.1 s
        before = len([m for m in listener.lines() if m == "WATCHDOG=1"])
        time.sleep(3.0)
        after = len([m for m in listener.lines() if m == "WATCHDOG=1"])
        assert after == before, listener.lines()
        # The event loop itself is alive and answering: only the pings stopped.
        status = ctl(env, "status")
        assert status.returncode == 0 and "state: listening" in status.stdout
    finally:
        proc.kill()
        proc.wait()
        listener.close()


def test_dbus_activation_starts_the_daemon_on_first_call(tmp_path):
    services = tmp_path / "services"
    services.mkdir()
    (services / install.ACTIVATION_NAME).write_text(install.render(str(BIN))[install.ACTIVATION_NAME])
    env_for_bus = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), HF_HUB_OFFLINE="1")
    old = dict(os.environ)
    os.environ.update(env_for_bus)  # the bus passes its environment to what it activates
    try:
        bus = PrivateBus(tmp_path, services_dir=services)
    finally:
        os.environ.clear()
        os.environ.update(old)
    env = daemon_env(bus, tmp_path / "state")
    try:
        # What a key binding runs (the dbus-send fast path) activates the daemon too.
        result = ctl(env, "stop", timeout=120)
        assert result.returncode == 0, result.stderr
        result = ctl(env, "status", timeout=120)
        assert result.returncode == 0, result.stderr
        assert "state: idle" in result.stdout
        from listend_ctl.monitor import find_listend_processes

        activated = [
            p for p in find_listend_processes() if p.environ().get("XDG_STATE_HOME") == str(tmp_path / "state")
        ]
        assert len(activated) == 1
        activated[0].terminate()
        activated[0].wait(60)
        # Activated by `status` itself: the memory it shows is measured, not 0 (no tick had run yet).
        result = ctl(env, "status", timeout=120)
        assert result.returncode == 0 and "memory: 0 MiB" not in result.stdout, result.stdout
        memory = int(result.stdout.split("memory: ", 1)[1].split(" MiB", 1)[0])
        assert memory > 50, result.stdout
        for process in find_listend_processes():
            if process.environ().get("XDG_STATE_HOME") == str(tmp_path / "state"):
                process.terminate()
                process.wait(60)
    finally:
        bus.close()


def _no_systemd_env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    runtime = tmp_path / "rt"
    runtime.mkdir(exist_ok=True, mode=0o700)
    return dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_RUNTIME_DIR=str(runtime),
        DBUS_SESSION_BUS_ADDRESS=f"unix:path={runtime}/no-bus",
    )


def test_install_and_uninstall_are_idempotent(tmp_path):
    env = _no_systemd_env(tmp_path)
    home = Path(env["HOME"])
    expected = {
        home / ".config" / "systemd" / "user" / "listend.service",
        home / ".local" / "share" / "dbus-1" / "services" / "io.github.listend.service",
        home / ".config" / "autostart" / "listend-tray.desktop",
        home / ".config" / "autostart" / "listend-ime.desktop",  # IBus is installed here (scripts/install-deps)
    }
    first = ctl(env, "install")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("wrote ") == 4 and "skipped daemon-reload" in first.stdout
    files = {p for p in home.rglob("*") if p.is_file()}
    assert files == expected
    unit = (home / ".config" / "systemd" / "user" / "listend.service").read_text()
    assert f"ExecStart={BIN / 'listend'} run" in unit
    assert f"Exec={BIN / 'listend-tray'}" in (home / ".config" / "autostart" / "listend-tray.desktop").read_text()
    assert f"Exec={BIN / 'listend-ime'}" in (home / ".config" / "autostart" / "listend-ime.desktop").read_text()
    second = ctl(env, "install")
    assert second.returncode == 0 and second.stdout.count("unchanged ") == 4
    assert {p for p in home.rglob("*") if p.is_file()} == expected
    now = ctl(env, "install", "--now")
    assert now.returncode == 1 and "enable --now" in now.stdout
    env.update(XDG_STATE_HOME=str(home / ".local" / "state"), XDG_CACHE_HOME=str(home / ".cache"))
    history = home / ".local" / "state" / "listend" / "history"
    history.mkdir(parents=True)
    telemetry = home / ".cache" / "Microsoft" / "DeveloperTools" / ".onnxruntime"  # an older listend's onnxruntime
    telemetry.mkdir(parents=True)
    for _ in range(2):
        gone = ctl(env, "uninstall")
        assert gone.returncode == 0
        assert not [p for p in home.rglob("*") if p.is_file()]
    assert gone.stdout.count("absent ") == 4
    # What stays is said, each with the command that removes it: the user's data, the program, onnxruntime's files.
    kept = gone.stdout.split("kept (remove by hand", 1)[1]
    assert f"rm -rf {history.parent}" in kept and f"rm -rf {telemetry}" in kept, gone.stdout
    assert f"rm -rf {BIN.parent}" in kept and ".cache/listend" not in kept  # no models were ever converted here


def test_without_ibus_install_skips_the_input_method_and_says_so(tmp_path):
    env = {**_no_systemd_env(tmp_path), "PATH": str(tmp_path / "empty-path")}  # no ibus-daemon, no systemctl
    home = Path(env["HOME"])
    result = ctl(env, "install")
    assert result.returncode == 0, result.stderr
    assert "IBus is not installed" in result.stdout and result.stdout.count("wrote ") == 3
    assert not (home / ".config" / "autostart" / "listend-ime.desktop").exists()
    assert (home / ".config" / "autostart" / "listend-tray.desktop").exists()
