"""The benchmark tool keeps working: its quick mode runs in CI (figures are not asserted, only produced)."""

from __future__ import annotations

import json
import subprocess
import sys

from PIL import Image

from tests.support.processes import REPO


def test_bench_quick_writes_json_and_plot(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["quick"] is True and set(data["profiles"]) == {"lightweight", "full"}
    for profile in data["profiles"].values():
        for key in (
            "partial_lag_s",
            "refined_lag_s",
            "throughput_x_realtime",
            "peak_rss_mb",
            "growth_mb_per_audio_hour",
            "idle_cpu_percent",
            "wer_final",
            "wer_live",
            "wer_offline_same_model",
            "counters",
            "rss_samples",
        ):
            assert key in profile, key
        assert profile["refined_lag_s"]["n"] >= 3 and profile["throughput_x_realtime"] > 0
        assert profile["wer_final"] < 50  # it recognised the speech
    assert data["baseline_old_design"]["rss_samples"]
    assert Image.open(tmp_path / "rss.png").size == (960, 540)
    assert "partial p50/p95" in result.stdout
