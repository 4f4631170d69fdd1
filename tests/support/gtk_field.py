"""A real GTK3 application with two text views, for the input method's tests (run by Debian's python3).

Usage: gtk_field.py EVENTS.jsonl. Writes one JSON line per event: ``ready``, ``focus`` (which view has
the keyboard focus), ``preedit`` (the view's preedit string, as GTK shows it under the cursor) and
``text`` (the view's buffer, which never holds the preedit). Reads commands from stdin, one a line:
``focus a`` / ``focus b`` moves the keyboard focus between the views, ``blur`` to a window with no
text field (logged as ``blur``), ``quit`` ends it.

Run with ``GTK_IM_MODULE=ibus`` on X11 or Wayland, or with no module on GNOME (text-input-v3 -> the
shell -> IBus). Not imported by the suite: it needs the system's PyGObject.
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


window = Gtk.Window(title="listend-test-field")
window.set_default_size(700, 300)
box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
views = {}
for name in ("a", "b"):
    view = Gtk.TextView()
    view.set_size_request(680, 130)
    view.connect("preedit-changed", lambda _view, text, name=name: log("preedit", view=name, text=text))
    view.connect("focus-in-event", lambda *_args, name=name: log("focus", view=name) and False)
    buffer = view.get_buffer()
    buffer.connect(
        "changed",
        lambda b, name=name: log("text", view=name, text=b.get_text(b.get_start_iter(), b.get_end_iter(), True)),
    )
    box.pack_start(view, True, True, 0)
    views[name] = view
window.add(box)
window.connect("destroy", Gtk.main_quit)
# A window with no text field in it: where focus goes when the user clicks away from the fields.
elsewhere = Gtk.Window(title="listend-test-elsewhere")
elsewhere.add(Gtk.Button(label="no text here"))
elsewhere.set_default_size(300, 100)
window.show_all()


def focus(name):
    window.present()
    views[name].grab_focus()
    return False


def command(channel, _condition):
    line = channel.readline()
    if not line or line.strip() == "quit":
        Gtk.main_quit()
        return False
    verb, _, arg = line.strip().partition(" ")
    if verb == "focus" and arg in views:
        focus(arg)
    elif verb == "blur":
        elsewhere.show_all()
        elsewhere.present()
        log("blur")
    return True


GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, command)
GLib.timeout_add(300, lambda: focus("a"))
GLib.timeout_add(600, lambda: log("ready") and False)
Gtk.main()
