"""A GTK3 window on Wayland with a text view and a password entry, for the native input method's tests.

Run by Debian's python3 with ``GDK_BACKEND=wayland GTK_IM_MODULE=wayland`` (GTK's text-input-v3
module). Usage: gtk_wayland_field.py EVENTS.jsonl. Writes JSON lines as :mod:`gtk_field` does:
``ready``, ``focus`` (``view`` "a" is the text view, "p" the password entry), ``preedit`` and ``text``.
Reads ``focus a`` / ``focus p`` / ``quit`` on stdin. Not imported by the suite.
"""

import json
import sys
import time

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402

out = open(sys.argv[1], "a", buffering=1, encoding="utf-8")


def log(kind, **fields):
    out.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")


window = Gtk.Window(title="listend-wayland-field")
window.set_default_size(700, 300)
box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)

view = Gtk.TextView()
view.set_size_request(680, 130)
view.connect("preedit-changed", lambda _view, text: log("preedit", view="a", text=text))
view.connect("focus-in-event", lambda *_args: log("focus", view="a") and False)
buffer = view.get_buffer()
buffer.connect("changed", lambda b: log("text", view="a", text=b.get_text(b.get_start_iter(), b.get_end_iter(), True)))

# A password entry as applications make one: hidden text, and the password purpose for input methods.
password = Gtk.Entry()
password.set_visibility(False)
password.set_input_purpose(Gtk.InputPurpose.PASSWORD)
password.connect("preedit-changed", lambda _entry, text: log("preedit", view="p", text=text))
password.connect("focus-in-event", lambda *_args: log("focus", view="p") and False)
password.connect("changed", lambda entry: log("text", view="p", text=entry.get_text()))

box.pack_start(view, True, True, 0)
box.pack_start(password, False, False, 0)
window.add(box)
window.connect("destroy", Gtk.main_quit)
window.show_all()
widgets = {"a": view, "p": password}


def focus(name):
    window.present()
    widgets[name].grab_focus()
    return False


def command(channel, _condition):
    line = channel.readline()
    if not line or line.strip() == "quit":
        Gtk.main_quit()
        return False
    verb, _, arg = line.strip().partition(" ")
    if verb == "focus" and arg in widgets:
        focus(arg)
    return True


GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, command)
GLib.timeout_add(300, lambda: focus("a"))
GLib.timeout_add(600, lambda: log("ready") and False)
Gtk.main()
