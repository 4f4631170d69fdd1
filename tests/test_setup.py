"""The README's set-up for a newcomer: scripts/install-deps explains itself where it cannot install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.audio import words
from tests.support.processes import REPO, listend


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


def test_the_readme_configuration_example_works_offline(tmp_path: Path, speech_wav: Path):
    """Its example once named a hub model (small.en): offline, listend refused to start with it."""
    section = (REPO / "README.md").read_text().split("## Configure", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```toml\n(.*?)\n```", section, re.DOTALL)
    assert len(example) == 1
    config = tmp_path / "config.toml"
    config.write_text(example[0])
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = listend("transcribe", "--config", str(config), str(speech_wav), env=env)
    assert r.returncode == 0, r.stderr
    assert {"quarterly", "report"} <= set(words(r.stdout)), r.stdout
