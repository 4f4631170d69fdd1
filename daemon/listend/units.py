"""Constants every part of listend shares."""

from __future__ import annotations

SAMPLE_RATE = 16_000
"""Samples per second everywhere after the source: the pipeline is 16 kHz mono float32."""

MIB = 1 << 20
"""Bytes in a MiB. Every size listend shows or takes is in MiB (settings say ``_mb``, the unit is 2**20)."""

MAX_SEGMENT_ID = 2**53 - 1
"""Highest segment id: exact as a JSON number (2**53) and far inside D-Bus ``t``."""
