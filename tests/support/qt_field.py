"""A Qt5 window with a focused text field, for the KDE tests: what an input method does to it, as JSON lines.

Run by Debian's python3 (PyQt5 is Debian's ``python3-pyqt5``) with ``QT_QPA_PLATFORM=wayland`` and no
``QT_IM_MODULE``: Qt 5.15 then speaks text-input-unstable-v2 to KWin, which passes on what KWin's input
method sends. Usage: qt_field.py EVENTS.jsonl. Writes lines as :mod:`gtk_field` does -- ``ready``,
``focus``, ``preedit`` and ``text`` (the document, which never holds the preedit), all with ``view`` "a" --
so :class:`tests.support.ibus.GtkField` reads them. Reads ``quit`` on stdin. Not imported by the suite.
"""

import json
import sys
import time

from PyQt5.QtCore import QSocketNotifier, QTimer
from PyQt5.QtWidgets import QApplication, QTextEdit

out = open(sys.argv[1], "a", buffering=1, encoding="utf-8")


def log(kind, **fields):
    out.write(json.dumps({"t": time.time(), "kind": kind, "view": "a", **fields}) + "\n")


class Field(QTextEdit):
    preedit = ""

    def inputMethodEvent(self, event):
        if event.preeditString() != self.preedit:
            self.preedit = event.preeditString()
            log("preedit", text=self.preedit)
        super().inputMethodEvent(event)

    def focusInEvent(self, event):
        log("focus")
        super().focusInEvent(event)


app = QApplication(sys.argv[:1])
app.setApplicationName("listend-qt-field")
field = Field()
field.setWindowTitle("listend-qt-field")
field.resize(700, 160)
field.textChanged.connect(lambda: log("text", text=field.toPlainText()))
stdin = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Read)
stdin.activated.connect(lambda _fd: app.quit() if sys.stdin.readline().strip() in ("quit", "") else None)
field.show()
field.activateWindow()
field.setFocus()
QTimer.singleShot(0, lambda: log("ready", platform=app.platformName()))
sys.exit(app.exec_())
