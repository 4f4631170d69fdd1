"""The GTK4 twin of :mod:`gtk_wayland_field`: a text view ("a") and a password entry ("p"), same events.

GTK4 speaks text-input-v3 itself (no IM module to choose). Run by Debian's python3 with
``GDK_BACKEND=wayland GSK_RENDERER=cairo`` (headless sway has no GL). Usage:
gtk4_wayland_field.py EVENTS.jsonl; reads ``focus a`` / ``focus p`` / ``quit`` on stdin.
"""

import json
import sys
import time

import gi

gi.require_version("Gtk", "4.0")
from gi.repository import GLib, Gtk  # noqa: E402

out = open(sys.argv[1], "a", buffering=1, encoding="utf-8")
widgets = {}


def log(kind, **fields):
    out.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")


def on_focus(widget, name):
    controller = Gtk.EventControllerFocus()
    controller.connect("enter", lambda *_args: log("focus", view=name))
    widget.add_controller(controller)


def build(app):
    window = Gtk.ApplicationWindow(application=app, title="listend-wayland-field-4")
    window.set_default_size(700, 300)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=8)
    view = Gtk.TextView()
    view.set_size_request(680, 130)
    view.connect("preedit-changed", lambda _view, text: log("preedit", view="a", text=text))
    buffer = view.get_buffer()
    buffer.connect(
        "changed", lambda b: log("text", view="a", text=b.get_text(b.get_start_iter(), b.get_end_iter(), True))
    )
    on_focus(view, "a")
    password = Gtk.PasswordEntry()  # GTK sets the password purpose for input methods itself
    password.connect("changed", lambda entry: log("text", view="p", text=entry.get_text()))
    on_focus(password, "p")
    box.append(view)
    box.append(password)
    window.set_child(box)
    widgets.update(a=view, p=password)
    window.present()

    def focus(name):
        window.present()
        widgets[name].grab_focus()
        return False

    def command(channel, _condition):
        line = channel.readline()
        if not line or line.strip() == "quit":
            app.quit()
            return False
        verb, _, arg = line.strip().partition(" ")
        if verb == "focus" and arg in widgets:
            focus(arg)
        return True

    GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, command)
    GLib.timeout_add(300, lambda: focus("a"))
    GLib.timeout_add(600, lambda: log("ready") and False)


app = Gtk.Application(application_id="io.github.listend.TestField4")
app.connect("activate", build)
app.hold()  # stdin's "quit" ends it, not the window's mapping
app.run([])
