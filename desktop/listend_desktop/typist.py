"""Typing refined text where the cursor is -- a client's job, never the daemon's.

The backend is picked when typing, from what the session offers:

* Wayland with the virtual-keyboard protocol (sway, Hyprland, other wlroots
  compositors): ``wtype``;
* X11 (and X11 windows under XWayland when no Wayland backend works):
  ``xdotool type`` through XTest for ASCII text; text with other characters is
  pasted (clipboard, then one Ctrl+V), which no keymap can get wrong;
* GNOME's and KDE's Wayland have no virtual-keyboard protocol (``wtype`` says
  so and exits non-zero): the text goes on the clipboard and is pasted with
  one Ctrl+V through the RemoteDesktop portal (:mod:`remote_keyboard`; the
  user allows it once);
* where nothing can type: the clipboard alone, and the user is told once --
  never a silent loss.

Only final (refined) text is typed. A voice command (:mod:`listend.commands`)
is executed instead of typed: "new line" presses Return (twice for "new
paragraph"); "scratch that" and a spoken mark are refused, because typing
cannot see the field and so cannot verify that the text before the cursor is
still what listend typed (the user is told once). Text goes through stdin (``xdotool type
--file -``, ``wtype -``), never a command line. Both helpers type Unicode by
remapping a spare keycode, so accents come out right whatever the keyboard
layout.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from listend.outcome import Outcome

from .clipboard import Clipboard

if TYPE_CHECKING:
    from .remote_keyboard import PortalKeyboard

log = logging.getLogger("listend.typing")

TYPE_TIMEOUT_S = 30.0
RETURNS = {"new_line": 1, "new_paragraph": 2}  # voice commands the typing path carries out: Return presses
NOTHING_TO_TYPE = ("stop_listening",)


def refusal_notice(reason: str) -> tuple[str, str]:
    """The desktop notification's (summary, body) when typing is refused."""
    return "listend: cannot type here", f"{reason}. Refined text goes to the clipboard instead."


def command_refusal_notice(reason: str) -> tuple[str, str]:
    """The desktop notification's (summary, body) when a voice command is not carried out by typing."""
    return "listend: left your text as it is", f"The command was not carried out: {reason}. Nothing was deleted."


def typing_command(env: Mapping[str, str] | None = None) -> list[str] | None:
    env = os.environ if env is None else env
    if env.get("WAYLAND_DISPLAY") and shutil.which("wtype"):
        # wtype uploads a keymap of its own first; 30 ms lets the focused client take it before the
        # first key (under load, a segment's leading space was lost without it).
        return ["wtype", "-s", "30", "-"]
    if env.get("DISPLAY") and shutil.which("xdotool"):
        # 12 ms (xdotool's default): characters outside the keymap are typed by remapping a spare
        # keycode, and a shorter delay lets the remap race the application reading the key.
        return ["xdotool", "type", "--clearmodifiers", "--delay", "12", "--file", "-"]
    return None


class Typist:
    """Types each segment after the previous one, with a space between sentences.

    Parameters
    ----------
    on_refused : callable
        Called once with the reason when typing does not work; from then on
        segments go to the clipboard.
    """

    def __init__(
        self,
        on_refused: Callable[[str], None] | None = None,
        on_command_refused: Callable[[str], None] | None = None,
    ):
        self._on_refused = on_refused or (lambda reason: None)
        self._on_command_refused = on_command_refused or (lambda reason: None)
        self._command_refusal_said = False
        self._line_start = False  # the last thing typed was a line break: no space before the next segment
        self._clipboard = Clipboard()
        self._typed_any = False
        self._paste_only = False  # typing was refused; the portal pastes instead
        self._keyboard: PortalKeyboard | None = None
        self.refused = ""

    def type_segment(self, text: str) -> Outcome:
        """Type ``text`` (a refined segment); not ok when it went to the clipboard instead (detail: why)."""
        text = text.strip()
        if not text:
            return Outcome.done()
        # A new segment continues the sentence flow, or starts the line a voice command began.
        chunk = (" " if self._typed_any and not self._line_start else "") + text
        if not self.refused:
            typed = self._paste(chunk) if self._paste_only else self._type(chunk)
            if not typed and not self._paste_only and os.environ.get("WAYLAND_DISPLAY"):
                log.info("typing refused (%s); pasting through the remote desktop portal", typed.detail)
                self._paste_only = True
                pasted = self._paste(chunk)
                typed = pasted if pasted else Outcome.failed(f"{typed.detail}; {pasted.detail}")
            if typed:
                self._typed_any, self._line_start = True, False
                return typed
            self.refused = typed.detail
            log.warning("typing refused (%s); refined text goes to the clipboard instead", self.refused)
            self._on_refused(self.refused)
        self._clipboard.copy_and_wait(text)
        return Outcome.failed(self.refused)

    def execute(self, action: str) -> Outcome:
        """Carry out a voice command (a ``listend.commands.Action`` value) instead of typing its words.

        Line breaks are Return presses (pasted as line breaks where only
        pasting works); "scratch that" and the spoken marks are refused, said
        once: typing cannot verify that the text before the cursor is still
        listend's, and it never deletes what it cannot see.
        """
        if action in NOTHING_TO_TYPE:
            return Outcome.done()
        presses = RETURNS.get(action)
        if presses is None:
            reason = "typing cannot see the field, so it cannot check that the text is still there to change"
            log.warning("voice command %s not carried out: %s", action, reason)
            if not self._command_refusal_said:
                self._command_refusal_said = True
                self._on_command_refused(reason)
            return Outcome.failed(reason)
        if self.refused:
            return Outcome.failed(self.refused)  # the clipboard holds single segments here: nothing to break
        if self._paste_only:
            done = self._paste("\n" * presses)
        else:
            done = self._press_return(presses)
        if done:
            self._line_start = True
        return done

    def _press_return(self, presses: int) -> Outcome:
        command = typing_command()
        if command is None:
            return Outcome.failed("no way to type here: install wtype (wlroots Wayland) or xdotool (X11)")
        if command[0] == "wtype":
            return self._run(["wtype", *(["-k", "Return"] * presses)], b"")
        return self._run(["xdotool", "key", "--clearmodifiers", *(["Return"] * presses)], b"")

    def close(self) -> None:
        if self._keyboard is not None:
            self._keyboard.close()
            self._keyboard = None

    def _stage_for_paste(self, text: str) -> Outcome:
        """Put ``text`` on the clipboard for a Ctrl+V."""
        copied = self._clipboard.copy_and_wait(text)
        return (
            copied if copied else Outcome.failed(f"cannot put the text on the clipboard to paste it: {copied.detail}")
        )

    def _paste(self, text: str) -> Outcome:
        staged = self._stage_for_paste(text)
        if not staged:
            return staged
        if self._keyboard is None:
            from .remote_keyboard import PortalKeyboard

            self._keyboard = PortalKeyboard()
        return self._keyboard.paste()

    def _type(self, text: str) -> Outcome:
        command = typing_command()
        if command is None:
            return Outcome.failed("no way to type here: install wtype (wlroots Wayland) or xdotool (X11)")
        if command[0] == "xdotool" and not text.isascii():
            # XTest types a character outside the keymap by remapping a spare keycode, and the
            # application may read the key before the new mapping (measured: an accent dropped in
            # one run of three). Pasting is layout-independent: clipboard, then one Ctrl+V.
            staged = self._stage_for_paste(text)
            return self._run(["xdotool", "key", "--clearmodifiers", "ctrl+v"], b"") if staged else staged
        return self._run(command, text.encode("utf-8"))

    @staticmethod
    def _run(command: list[str], stdin: bytes) -> Outcome:
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, timeout=TYPE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return Outcome.failed(f"{command[0]} did not finish within {TYPE_TIMEOUT_S:.0f} s")
        except OSError as e:
            return Outcome.failed(f"cannot run {command[0]}: {e.strerror}")
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            return Outcome.failed(f"{command[0]} failed: {detail[-1] if detail else result.returncode}")
        return Outcome.done(command[0])
