"""listend: local, offline live dictation for the Linux desktop.

The public API is the :class:`~daemon.engine.Engine` with its settings
(:mod:`daemon.config`), sources (:mod:`daemon.sources`) and events
(:mod:`daemon.events`); the D-Bus service, the tray and ``listenctl`` are
clients of it.
"""

__version__ = "0.2.0"
