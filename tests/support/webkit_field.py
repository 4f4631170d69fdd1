"""A browser's single-line field: an ``<input type=text>`` in a form, in WebKitGTK (GTK3), for the input
method's tests (run by Debian's python3 with gir1.2-webkit2-4.1).

Usage: webkit_field.py EVENTS.jsonl. Writes JSON lines as :mod:`field_app` reads them (one view, ``a``):
``ready``, ``focus`` (the input has focus), ``text`` (the input's value) and ``submit`` (the form was
submitted, as Enter in a search box would). ``quit`` on stdin ends it. Run with ``GTK_IM_MODULE=ibus``.
Not imported by the suite.
"""

import json
import sys
import time

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import GLib, Gtk, WebKit2  # noqa: E402

out = open(sys.argv[1], "a", buffering=1, encoding="utf-8")


def log(kind, **fields):
    out.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")


PAGE = """<!doctype html><html><body>
<form id="f" action="about:blank"><input id="q" type="text" size="60" autofocus></form>
<script>
const q = document.getElementById("q");
function say(kind) { document.title = JSON.stringify({kind: kind, text: q.value, n: Math.random()}); }
q.addEventListener("input", () => say("text"));
q.addEventListener("focus", () => say("focus"));
document.getElementById("f").addEventListener("submit", (e) => { e.preventDefault(); say("submit"); });
q.focus(); say("focus");
</script></body></html>"""

window = Gtk.Window(title="listend-test-browser")
window.set_default_size(700, 120)
view = WebKit2.WebView()
window.add(view)
window.connect("destroy", Gtk.main_quit)


def titled(web_view, _param):
    title = web_view.get_title()
    if not title:
        return
    said = json.loads(title)
    if said["kind"] == "focus":
        log("focus", view="a")
    else:
        log(said["kind"], view="a", text=said["text"])


def loaded(web_view, event):
    if event == WebKit2.LoadEvent.FINISHED:
        window.present()
        web_view.grab_focus()
        web_view.run_javascript("q.focus(); say('focus');", None, None, None)
        GLib.timeout_add(300, lambda: log("ready") and False)


view.connect("notify::title", titled)
view.connect("load-changed", loaded)
window.show_all()
view.load_html(PAGE, "http://localhost/")


def command(channel, _condition):
    line = channel.readline()
    if not line or line.strip() == "quit":
        Gtk.main_quit()
        return False
    return True


GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP, command)
Gtk.main()
