"""listend: local, offline live dictation for the Linux desktop.

The public API is the :class:`~listend.engine.Engine` with its settings
(:mod:`listend.config`), sources (:mod:`listend.sources`) and events
(:mod:`listend.events`); the D-Bus service, the tray and ``listenctl`` are
clients of it.
"""

__version__ = "0.2.0"
