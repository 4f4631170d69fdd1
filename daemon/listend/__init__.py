"""listend: local, offline live dictation for the Linux desktop.

The public API is the :class:`~listend.engine.Engine` with its settings
(:mod:`listend.config`), sources (:mod:`listend.sources`) and events
(:mod:`listend.events`); the D-Bus service, the tray and ``listenctl`` are
clients of it.
"""

import os

__version__ = "0.3.0"

# Nothing leaves the machine. onnxruntime (Silero VAD, Moonshine) otherwise sends telemetry -- DNS queries
# for mobile.events.data.microsoft.com every few seconds -- and writes ~/.cache/Microsoft/DeveloperTools.
# It reads this variable once, when its library loads (onnxruntime.disable_telemetry_events() after the
# import does not stop it; tested with 1.32 under strace), so it is set here: every listend process imports
# this package before any module of it imports onnxruntime, and children (the Moonshine converter) inherit it.
# huggingface_hub's own switch is set too, for a hub model the user configures. tests/test_offline.py.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
