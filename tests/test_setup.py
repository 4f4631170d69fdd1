"""The README's set-up for a newcomer: scripts/install-deps explains itself where it cannot install."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import REPO


def test_install_deps_without_root_or_sudo_says_so_in_one_line():
    # A PATH with what the script needs and no sudo, where another user can read it (not the test's tmp_path).
    bin_dir = Path(tempfile.mkdtemp(prefix="listend-nosudo-"))
    bin_dir.chmod(0o755)
    (bin_dir / "id").symlink_to(shutil.which("id") or "/usr/bin/id")
    argv = ["/bin/sh", str(REPO / "scripts/install-deps")]
    if os.geteuid() == 0:  # as a user without sudo: nobody
        argv = [
            shutil.which("setpriv") or "/usr/bin/setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            *argv,
        ]
    r = subprocess.run(argv, env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 1 and r.stdout == "", r
    assert len(r.stderr.splitlines()) == 1 and "needs root" in r.stderr and "sudo" in r.stderr, r.stderr
    assert "not found" not in r.stderr
    shutil.rmtree(bin_dir)
