"""Desktop integration the clients share: the clipboard, typing at the cursor, xdg-desktop-portal requests.

Installed as ``listend_desktop``. It imports only listend's bus and path
helpers (``listend.bus``, ``listend.dbusio``, ``listend.paths``,
``listend.files``, ``listend.outcome``), never the engine: the daemon never
touches the display, its clients do.
"""
