"""Child processes of the tests: running tools, ending helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
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
