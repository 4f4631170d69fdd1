"""A real GTK3 single-line field (GtkEntry) for the input method's tests (run by Debian's python3).

Usage: gtk_entry_field.py EVENTS.jsonl. Writes one JSON line per event, as :mod:`field_app` reads them (its
one view is ``a``): ``ready``, ``focus``, ``text`` (the entry's text) and ``activate`` (the entry was
submitted, as Return in a search box or a form would be). ``quit`` on stdin ends it. Run with
``GTK_IM_MODULE=ibus``. Not imported by the suite: it needs the system's PyGObject.
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


window = Gtk.Window(title="listend-test-entry")
window.set_default_size(600, 60)
entry = Gtk.Entry()
entry.connect("changed", lambda e: log("text", view="a", text=e.get_text()))
entry.connect("activate", lambda e: log("activate", view="a", text=e.get_text()))
entry.connect("focus-in-event", lambda *_args: log("focus", view="a") and False)
window.add(entry)
window.connect("destroy", Gtk.main_quit)
window.show_all()


def command(channel, _condition):
    line = channel.readline()
    if not line or line.strip() == "quit":
        Gtk.main_quit()
        return False
    return True


def focus():
    window.present()
    entry.grab_focus()
    return False


GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, command)
GLib.timeout_add(300, focus)
GLib.timeout_add(600, lambda: log("ready") and False)
Gtk.main()
