"""Two fixes for pystray 0.19's xorg (XEmbed) backend, applied by subclassing.

* It handles ButtonPress but never selects ButtonPressMask on its window, so
  a click never arrives (pystray #151): we select it.
* A tray host that appears after the icon (session start-up order) is never
  found again: :meth:`ensure_docked` retries, and the tray calls it every
  few seconds while undocked.
* Updates from other threads are marshalled by sending a ClientMessage on
  the icon's own X connection, whose thread sits in ``next_event``; python-xlib
  keeps such a request in its buffer until that thread wakes for another
  event -- seconds or minutes later. We send the wake-up message through a
  second connection, so the X server delivers it at once.
* Every icon change sends a new SYSTEM_TRAY_REQUEST_DOCK; tray hosts then
  re-embed the icon, and trayer sometimes gives the new socket a width of one
  pixel. Once docked, we only repaint.
"""

from __future__ import annotations


def fixed_icon_class(base: type) -> type:
    """Return ``base`` itself, or a fixed subclass when it is the xorg backend."""
    if base.__module__ != "pystray._xorg":
        return base
    import threading

    import Xlib.display
    import Xlib.X

    class XorgIcon(base):
        _waker = None
        _waker_lock = threading.Lock()

        def _send_message(self, window, client_type, l0=0, l1=0, l2=0, l3=0):
            loop_thread = getattr(self, "_thread", None)
            if window is not self._window or loop_thread is None or threading.current_thread() is loop_thread:
                return super()._send_message(window, client_type, l0, l1, l2, l3)
            with self._waker_lock:
                target = self._waker_display().create_resource_object("window", window.id)
                target.send_event(
                    Xlib.display.event.ClientMessage(
                        type=Xlib.X.ClientMessage,
                        client_type=client_type,
                        window=window.id,
                        data=(32, (Xlib.X.CurrentTime, l0, l1, l2, l3)),
                    ),
                    event_mask=Xlib.X.NoEventMask,
                )
                self._waker_display().flush()

        def _create_window(self):
            window = super()._create_window()
            window.change_attributes(
                event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask
            )
            return window

        def _waker_display(self):
            if self._waker is None:
                self._waker = Xlib.display.Display(self._display.get_display_name())
            return self._waker

        def ensure_docked(self) -> bool:
            """Ask to be docked again if no tray host has embedded the icon.

            pystray remembers a tray manager as soon as it *asked* it; whether the
            host embedded the window shows only in the window tree.
            """
            with self._waker_lock:
                d = self._waker_display()
                tree = d.create_resource_object("window", self._window.id).query_tree()
                embedded = tree.parent.id != d.screen().root.id
            if embedded:
                return True
            self._systray_manager = None
            self._update_icon()  # marshalled to the icon's thread: docks, then paints
            return False

        def _update_icon(self):
            if not self._systray_manager:
                return super()._update_icon()
            self._icon_data = None  # regenerate from the new image
            self._draw()
            self._icon_valid = True

    return XorgIcon
