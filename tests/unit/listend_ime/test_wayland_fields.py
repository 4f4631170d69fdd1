"""The composer through the native Wayland input method: listend-ime's own parts against a scripted compositor.

The composer, the delivery and :class:`WaylandFields` are the app's; the compositor is the scripted one of
:mod:`test_wayland_protocol` on a real socket (the clipboard is a recorder: nothing here may reach a desktop's).
"""

from __future__ import annotations

from listend_ime.composer import Composer, Effect
from listend_ime.delivery import Delivery
from listend_ime.wayland import Purpose
from listend_ime.wayland_fields import WaylandFields
from tests.support.waiting import until
from tests.unit.listend_ime.test_wayland_protocol import ScriptedCompositor, run


class RecordingClipboard:
    def __init__(self) -> None:
        self.copied: list[str] = []

    def copy(self, text: str) -> None:
        self.copied.append(text)


class App:
    """What the app wires together for the Wayland path (its ``_apply``, its notices)."""

    def __init__(self) -> None:
        self.composer = Composer()
        self.clipboard = RecordingClipboard()
        self.notices: list[str] = []
        self.delivery = Delivery(self.clipboard, lambda summary, body: self.notices.append(summary))  # type: ignore[arg-type]
        self.lost: list[str] = []
        self.fields = WaylandFields(self.composer, self.delivery, self.apply, lambda: None, self.lost.append)

    def apply(self, effects: list[Effect]) -> None:
        self.delivery.apply(effects)


def test_partials_are_the_preedit_and_finals_the_commits_confirmed_by_the_field(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        app = App()
        assert await app.fields.open(compositor.env()) is None
        assert app.fields.im is not None
        app.fields.im.answer_wait_s = 0.05
        compositor.field("Notes:")
        await until(lambda: app.composer.focus == "wayland#1.1", 10, "the field's focus")
        assert app.delivery.focused is app.fields

        app.apply(app.composer.partial(1, "first point", 1.0))
        await until(lambda: compositor.sent("preedit"), 10, "the preedit")
        assert compositor.sent("preedit")[0][1] == " first point"
        app.apply(app.composer.final(1, "first point.", 1.1))
        await until(lambda: compositor.sent("commit_string"), 10, "the commit")
        assert compositor.sent("commit_string") == [("commit_string", " first point.")]
        compositor.answer("Notes: first point.")
        await until(lambda: app.composer.counts.delivered == 1, 10, "the field to confirm the commit")

        # "Scratch that" with non-ASCII text: the composer agrees, the Wayland field's byte count does not.
        app.apply(app.composer.final(2, "café.", 1.2))
        await until(lambda: len(compositor.sent("commit_string")) == 2, 10, "the second commit")
        compositor.answer("Notes: first point. Café.")
        await until(lambda: app.composer.counts.delivered == 2, 10, "the second confirmation")
        app.apply(app.composer.command(3, "scratch_that", 2, 1.3) + app.composer.final(3, "scratch that", 1.3))
        assert compositor.sent("delete") == [] and app.composer.counts.refused == 1
        assert app.notices == ["listend: left your text as it is"]

        app.fields.close()
        await until(lambda: compositor.sent("destroy"), 10, "the input method to be destroyed")
        assert app.delivery.focused is None and app.composer.focus is None and app.clipboard.copied == []
        assert app.lost == []  # closing is no loss

    run(scenario, tmp_path)


def test_a_password_field_gets_nothing_and_is_said_once_then_dictation_resumes(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        app = App()
        assert await app.fields.open(compositor.env()) is None
        assert app.fields.im is not None
        app.fields.im.answer_wait_s = 0.05
        compositor.field(purpose=Purpose.PASSWORD)
        await until(lambda: app.composer.focus == "wayland#1.1", 10, "the password field's focus")
        app.apply(app.composer.partial(1, "my secret", 1.0))
        app.apply(app.composer.partial(1, "my secret word", 1.1))
        app.apply(app.composer.final(1, "My secret word.", 1.2))
        await app.fields.im.sync()
        assert compositor.requests == [] and app.clipboard.copied == []
        assert app.notices == ["listend: dictation paused in this field"]
        assert app.composer.counts.withheld == 1 and app.composer.counts.failed == 0

        compositor.field("")  # focus moves to an ordinary field
        await until(lambda: app.composer.focus == "wayland#1.2", 10, "the next field's focus")
        app.apply(app.composer.final(2, "Hello.", 2.0))
        await until(lambda: compositor.sent("commit_string"), 10, "the commit")
        assert compositor.sent("commit_string") == [("commit_string", "Hello.")]
        app.fields.close()

    run(scenario, tmp_path)


def test_another_input_method_on_the_seat_is_said_and_a_lost_one_hands_its_text_on(tmp_path):
    async def scenario(compositor: ScriptedCompositor) -> None:
        first, second = App(), App()
        assert await first.fields.open(compositor.env()) is None
        refused = await second.fields.open(compositor.env())
        assert refused is not None and "another input method" in refused and second.fields.im is None

        compositor.field("")
        await until(lambda: first.composer.focus == "wayland#1.1", 10, "the field's focus")
        first.apply(first.composer.partial(1, "half", 1.0))
        compositor.error("gone")
        await until(lambda: first.lost, 10, "the loss to be told")
        assert first.fields.im is None and first.composer.focus is None and first.delivery.focused is None

    run(scenario, tmp_path)


def test_a_mark_whose_deletion_the_field_refuses_types_nothing_either():
    """A spoken mark is a deletion and a commit: if the deletion is not done, its replacement is not typed."""

    class Field:
        def __init__(self) -> None:
            self.done: list[tuple[str, str]] = []

        def show_preedit(self, text: str) -> None:
            pass

        def commit(self, text: str) -> None:
            self.done.append(("commit", text))

        def delete_before(self, count: int, text: str) -> bool:
            self.done.append(("refused", text))
            return False

    app = App()
    field = Field()
    app.delivery.focused = field
    app.composer.focus_in("A", True, 0.0)
    app.composer.surrounding_text("A", "", 0.0)
    app.apply(app.composer.final(1, "Is it ready.", 0.1))
    app.apply(app.composer.surrounding_text("A", "Is it ready.", 0.2))
    app.apply(app.composer.command(2, "question_mark", 1, 0.3) + app.composer.final(2, "question mark", 0.3))
    assert field.done == [("commit", "Is it ready."), ("refused", ".")]


def test_a_field_of_the_next_dictation_is_a_new_field_with_nothing_of_an_earlier_one(tmp_path):
    """Each opening counts activations from 1: the names must not repeat, or "scratch that" acts on old text."""

    async def scenario(compositor: ScriptedCompositor) -> None:
        app = App()
        assert await app.fields.open(compositor.env()) is None
        assert app.fields.im is not None
        app.fields.im.answer_wait_s = 0.05
        compositor.field("Notes:")
        await until(lambda: app.composer.focus == "wayland#1.1", 10, "the field's focus")
        app.apply(app.composer.final(1, "first point.", 1.0))
        await until(lambda: compositor.sent("commit_string"), 10, "the commit")
        compositor.answer("Notes: first point.")
        await until(lambda: app.composer.counts.delivered == 1, 10, "the field to confirm the commit")
        app.fields.close()
        await until(lambda: compositor.sent("destroy"), 10, "the input method to be destroyed")
        compositor.held = False  # the seat is free again

        # The next dictation: another field that happens to end with the same text.
        assert await app.fields.open(compositor.env()) is None
        assert app.fields.im is not None
        app.fields.im.answer_wait_s = 0.05
        compositor.field("Other notes: first point.")
        await until(lambda: app.composer.focus == "wayland#2.1", 10, "the new field's focus")
        app.apply(app.composer.command(2, "scratch_that", 1, 2.0) + app.composer.final(2, "scratch that", 2.0))
        await app.fields.im.sync()
        assert compositor.sent("delete") == [] and app.composer.counts.refused == 1
        app.fields.close()

    run(scenario, tmp_path)
