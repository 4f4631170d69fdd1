"""input-method-unstable-v2 as listend-ime speaks it, against a compositor scripted here on a real socket.

sway does not check the serials of an input method's commits; this compositor's side of the wire lets the
tests say exactly what was sent, with which serial, and in what order -- and send what sway rarely does
(a protocol error, a closed connection).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from listend_ime.wayland import MANAGER, Purpose, Unavailable, WaylandInputMethod
from listend_ime.wayland_wire import Reader, message, string, uint
from tests.support.waiting import until
from tests.support.wayland_im import RecordingHost

# zwp_input_method_v2 events
ACTIVATE, DEACTIVATE, SURROUNDING, CAUSE, CONTENT_TYPE, DONE, UNAVAILABLE = range(7)


class ScriptedCompositor:
    """A seat and the input-method manager; records what each input method asks, sends what the test says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[tuple[object, ...]] = []  # the input methods' requests, parsed
        self.held = False  # one input method per seat
        self.focused_text: str | None = None  # a field that has focus when an input method arrives
        self._writers: list[asyncio.StreamWriter] = []
        self._im: tuple[asyncio.StreamWriter, int] | None = None
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, str(self.path))

    def env(self) -> dict[str, str]:
        return {"WAYLAND_DISPLAY": str(self.path)}

    def send(self, opcode: int, *args: bytes) -> None:
        """An event to the input method that holds the seat."""
        assert self._im is not None
        writer, im = self._im
        writer.write(message(im, opcode, *args))

    def field(self, text: str = "", purpose: int = 0, hint: int = 0) -> None:
        self.send(ACTIVATE)
        self.send(SURROUNDING, string(text), uint(len(text.encode())), uint(len(text.encode())))
        self.send(CONTENT_TYPE, uint(hint), uint(purpose))
        self.send(DONE)

    def answer(self, text: str) -> None:
        """The field commits its new state (as GTK does after every change of the input method's)."""
        self.send(SURROUNDING, string(text), uint(len(text.encode())), uint(len(text.encode())))
        self.send(DONE)

    def error(self, text: str) -> None:
        assert self._im is not None
        self._im[0].write(message(1, 0, uint(self._im[1]), uint(0), string(text)))

    async def hang_up(self) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()

    def sent(self, kind: str) -> list[tuple[object, ...]]:
        return [r for r in self.requests if r[0] == kind]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        wire = Reader()
        registry = manager = 0
        while data := await reader.read(65536):
            for msg in wire.feed(data):
                args = msg.args()
                if msg.obj == 1 and msg.opcode == 1:  # get_registry
                    registry = args.uint()
                    writer.write(message(registry, 0, uint(1), string("wl_seat"), uint(7)))
                    writer.write(message(registry, 0, uint(2), string(MANAGER), uint(1)))
                elif msg.obj == 1 and msg.opcode == 0:  # sync
                    writer.write(message(args.uint(), 0, uint(0)))
                elif msg.obj == registry:  # bind
                    _name, interface, _version, oid = args.uint(), args.string(), args.uint(), args.uint()
                    if interface == MANAGER.encode():
                        manager = oid
                elif msg.obj == manager and msg.opcode == 0:  # get_input_method
                    _seat, im = args.uint(), args.uint()
                    if self.held:
                        writer.write(message(im, UNAVAILABLE))
                    else:
                        self.held = True
                        self._im = (writer, im)
                        if self.focused_text is not None:
                            self.field(self.focused_text)
                elif self._im is not None and msg.obj == self._im[1] and writer is self._im[0]:
                    self.requests.append(_parse(msg.opcode, args))
        writer.close()


def _parse(opcode: int, args) -> tuple[object, ...]:
    if opcode == 0:
        return ("commit_string", args.string().decode())
    if opcode == 1:
        return ("preedit", args.string().decode(), args.int32(), args.int32())
    if opcode == 2:
        return ("delete", args.uint(), args.uint())
    if opcode == 3:
        return ("commit", args.uint())
    return ("destroy",) if opcode == 6 else ("other", opcode)


def run(scenario, tmp_path: Path) -> None:
    async def main() -> None:
        compositor = ScriptedCompositor(tmp_path / "wl")
        await compositor.start()
        try:
            await scenario(compositor)
        finally:
            await compositor.hang_up()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_each_change_is_one_commit_whose_serial_counts_the_done_events(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        host = RecordingHost()
        im = await WaylandInputMethod.open(host, compositor.env())
        im.answer_wait_s = 60  # only the field's answer lets the next change go
        assert not im.show_preedit("too early")  # no field wants us yet
        compositor.field("Hi.")
        await until(lambda: im.field, 10, "the activation")
        assert host.told == ["activated"] and im.field.before_cursor == "Hi."

        assert im.show_preedit("héllo")
        await until(lambda: compositor.sent("commit"), 10, "the commit")
        # Byte offsets: the cursor at the end of six bytes; serial 1 = one done so far.
        assert compositor.requests == [("preedit", "héllo", 6, 6), ("commit", 1)]

        assert im.commit(" Hello.") and im.show_preedit("and")
        await im.sync()
        assert len(compositor.requests) == 2, "nothing more before the field answered the preedit"
        compositor.answer("Hi.")
        await until(lambda: len(compositor.sent("commit")) == 2, 10, "the queued commit")
        # The commit and the preedit after it went as one change (what waited collapses), with the new serial.
        assert compositor.requests[2:] == [("commit_string", " Hello."), ("preedit", "and", 3, 3), ("commit", 2)]
        # That answer predates our commit: it confirms nothing.
        assert im.field.surrounding is None
        compositor.answer("Hi. Hello.")
        await until(lambda: im.field.before_cursor == "Hi. Hello.", 10, "the confirmation")

        # Deletion: only text the field reports just before the cursor, and only where bytes are characters.
        assert not im.delete_before("Hi.")
        assert im.deletion_refused("Hi.") == "the text before the cursor is not what listend wrote"
        assert im.deletion_refused(" Hello.") is None
        assert im.delete_before(" Hello.")
        await until(lambda: compositor.sent("delete"), 10, "the deletion")
        assert compositor.requests[-3:] == [("delete", 7, 0), ("preedit", "", 0, 0), ("commit", 3)]
        assert not im.delete_before(" Hello."), "not twice on the same report"
        assert "does not say" in (im.deletion_refused(" Hello.") or "")
        compositor.answer("Hi. Déjà")
        await until(lambda: im.field.before_cursor == "Hi. Déjà", 10, "the report")
        assert "non-ASCII" in (im.deletion_refused(" Déjà") or "") and not im.delete_before(" Déjà")

        im.close()
        await until(lambda: compositor.sent("destroy"), 10, "the destroy")
        assert host.reasons == [] and host.undelivered_texts == []

    run(scenario, tmp_path)


def test_text_that_waited_for_a_field_that_lost_focus_is_handed_back(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        host = RecordingHost()
        im = await WaylandInputMethod.open(host, compositor.env())
        im.answer_wait_s = 60
        compositor.field()
        await until(lambda: im.field, 10, "the activation")
        assert im.commit("sent") and im.commit("waiting") and im.show_preedit("shown")
        compositor.send(DEACTIVATE)
        compositor.send(DONE)
        await until(lambda: "deactivated" in host.told, 10, "the deactivation")
        assert host.undelivered_texts == ["waiting"]
        assert compositor.sent("commit_string") == [("commit_string", "sent")]
        assert not im.commit("nowhere") and not im.show_preedit("nowhere")

        # A new field: a fresh activation, nothing of the old one's preedit carried over.
        compositor.field("x")
        await until(lambda: im.field, 10, "the second activation")
        assert im.field.activation == 2 and host.told[-1] == "activated"
        im.close()

    run(scenario, tmp_path)


def test_a_password_field_gets_nothing_and_drops_what_waited(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        host = RecordingHost()
        im = await WaylandInputMethod.open(host, compositor.env())
        compositor.field(purpose=Purpose.PASSWORD)
        await until(lambda: im.field, 10, "the activation")
        assert im.field.private
        assert not im.show_preedit("x") and not im.commit("x") and not im.delete_before("x")
        compositor.field(hint=0x40)  # hidden text, any purpose
        await until(lambda: im.field.activation == 2, 10, "the second field")
        assert not im.commit("x")
        # Sensitive data alone (GTK's PRIVATE hint: a browser's private window) asks only that nothing be learnt.
        compositor.field(hint=0x80)
        await until(lambda: im.field.activation == 3, 10, "the third field")
        assert not im.field.private and im.commit("y")
        im.close()
        await until(lambda: compositor.sent("destroy"), 10, "the destroy")
        assert compositor.sent("commit_string") == [("commit_string", "y")]

    run(scenario, tmp_path)


def test_the_seat_holds_one_input_method_and_losses_are_said_once(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        host = RecordingHost()
        im = await WaylandInputMethod.open(host, compositor.env())
        with pytest.raises(Unavailable, match="another input method holds this seat"):
            await WaylandInputMethod.open(RecordingHost(), compositor.env())
        compositor.field()
        await until(lambda: im.field, 10, "the activation")
        compositor.error("invalid serial")
        await until(lambda: host.reasons, 10, "the protocol error")
        assert "invalid serial" in host.reasons[0] and not im.available and im.field is None
        im.close()
        assert len(host.reasons) == 1  # closing after the loss says nothing more

        await compositor.hang_up()

        with pytest.raises(Unavailable, match="cannot reach"):
            await WaylandInputMethod.open(RecordingHost(), compositor.env())

    run(scenario, tmp_path)


def test_a_compositor_without_the_manager_is_unavailable(tmp_path):
    async def scenario() -> None:
        with pytest.raises(Unavailable, match="no Wayland session"):
            await WaylandInputMethod.open(RecordingHost(), {})

    asyncio.run(scenario())


def test_a_field_that_never_answers_still_gets_every_change_in_order(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        im = await WaylandInputMethod.open(RecordingHost(), compositor.env())
        im.answer_wait_s = 0.05  # no answer comes: each change goes when the wait is over
        compositor.field()
        await until(lambda: im.field, 10, "the activation")
        assert im.show_preedit("one") and im.show_preedit("one two") and im.commit("One two.") and im.commit(" Three")
        await until(lambda: len(compositor.sent("commit_string")) == 2, 10, "both commits")
        assert compositor.sent("commit_string") == [("commit_string", "One two."), ("commit_string", " Three")]
        # The queued preedit collapsed to its newest text; every commit carries the one done there was.
        assert [r[1] for r in compositor.sent("preedit")] == ["one", "", ""]
        assert {r[1] for r in compositor.sent("commit")} == {1}
        im.close()

    run(scenario, tmp_path)


def test_a_field_focused_before_the_input_method_came_is_announced_once_it_is_open(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        compositor.focused_text = "already here"
        host = RecordingHost()
        im = await WaylandInputMethod.open(host, compositor.env())
        assert im.field is not None and im.field.before_cursor == "already here"
        assert host.told == []  # not while open() ran: the host had no input method to call yet
        await until(lambda: host.told, 10, "the announcement")
        assert host.told == ["activated"] and host.fields[0].activation == 1
        assert im.show_preedit("x")
        im.close()

    run(scenario, tmp_path)
