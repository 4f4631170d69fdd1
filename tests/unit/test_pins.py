"""What listend relies on in the libraries it pins (pyproject.toml says why each is exact)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_sounddevice_still_has_the_private_calls_that_restart_portaudio():
    import sounddevice

    assert callable(sounddevice._terminate) and callable(sounddevice._initialize)


def test_importing_listend_turns_onnxruntime_telemetry_off_before_onnxruntime_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY")}
    probe = "import sys, listend, os; print('onnxruntime' in sys.modules, os.environ['ORT_DISABLE_TELEMETRY'])"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "1"]
