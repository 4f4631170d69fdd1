"""Who delivers a refined segment (:func:`delivery_route`): the one rule the tray, listend-ime and listenctl share.

Contract: a pure function of the daemon's ``Delivery`` setting and what is
present on the bus (the caller found out, with its checks); no bus, no state.
"""

from __future__ import annotations


def delivery_route(method: str, ime_connected: bool, typist: bool = False) -> str:
    """Who delivers a refined segment, by the daemon's ``Delivery`` (``[delivery] method``): the one rule.

    ``ime``: listend-ime commits it (it is connected to IBus and holds its
    checked name); ``type``: the tray types it; ``typist``: ``listenctl
    transcript --follow --type`` types it (it holds its checked name,
    ``typist``), and the tray does not; ``clipboard``: the tray copies it;
    ``nowhere``: the input method was chosen and is not there (the tray
    copies it and says so). ``auto`` is the input method when it is there,
    typing when it is not.
    """
    if method == "type" or (method == "auto" and not ime_connected):
        return "typist" if typist else "type"
    if method == "clipboard":
        return "clipboard"
    return "ime" if ime_connected else "nowhere"
