"""A real GTK3 window with a text view and two password fields, for the input method's password tests.

Run by Debian's python3 with ``GTK_IM_MODULE=ibus`` (X11 or Wayland). Usage: gtk_private_field.py
EVENTS.jsonl. Writes JSON lines as :mod:`gtk_field` does: ``ready``, ``focus``, ``preedit``, ``text``.
Its views: ``a`` a text view, ``p`` an entry with hidden text (``set_visibility(False)`` only, as most apps
make a password entry), ``q`` a visible entry whose input purpose is PASSWORD (as apps with PIN fields
do). Reads ``focus a|p|q`` and ``quit`` on stdin. Not imported by the suite.
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


window = Gtk.Window(title="listend-private-field")
window.set_default_size(700, 300)
box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)

view = Gtk.TextView()
view.set_size_request(680, 130)
view.connect("preedit-changed", lambda _view, text: log("preedit", view="a", text=text))
view.connect("focus-in-event", lambda *_args: log("focus", view="a") and False)
buffer = view.get_buffer()
buffer.connect("changed", lambda b: log("text", view="a", text=b.get_text(b.get_start_iter(), b.get_end_iter(), True)))
box.pack_start(view, True, True, 0)
widgets = {"a": view}

hidden = Gtk.Entry()
hidden.set_visibility(False)
purposed = Gtk.Entry()
purposed.set_input_purpose(Gtk.InputPurpose.PASSWORD)
for name, entry in (("p", hidden), ("q", purposed)):
    entry.connect("preedit-changed", lambda _entry, text, name=name: log("preedit", view=name, text=text))
    entry.connect("focus-in-event", lambda *_args, name=name: log("focus", view=name) and False)
    entry.connect("changed", lambda e, name=name: log("text", view=name, text=e.get_text()))
    box.pack_start(entry, False, False, 0)
    widgets[name] = entry

window.add(box)
window.connect("destroy", Gtk.main_quit)
window.show_all()


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
