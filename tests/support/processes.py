"""Child processes of the tests: running tools, ending helpers."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent

# Every import package and its folder, as pyproject.toml finds them (a new package is checked from its first day).
PACKAGES: dict[str, str] = {
    package.name: f"{root}/{package.name}"
    for root in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["where"]
    for package in sorted((REPO / root).iterdir())
    if (package / "__init__.py").exists()
}
BIN = Path(sys.executable).parent


def end_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_tool(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def listend(*args: str, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed ``listend`` command."""
    return subprocess.run([str(BIN / "listend"), *args], capture_output=True, text=True, timeout=timeout, **kw)
