"""The Wayland wire format as listend-ime's hand-written client writes and reads it, and the field's state."""

from __future__ import annotations

import socket
import struct
import sys

import pytest

from listend_ime import wayland, wayland_wire
from listend_ime.wayland import Field, Hint, Purpose, Surrounding
from listend_ime.wayland_wire import Args, Message, Reader, WireError, int32, message, socket_path, string, uint

ENDIAN = "<" if sys.byteorder == "little" else ">"


def test_a_string_carries_its_length_with_the_nul_and_is_padded_to_four_bytes():
    assert string("") == struct.pack(ENDIAN + "I", 1) + b"\0\0\0\0"
    assert string("abc") == struct.pack(ENDIAN + "I", 4) + b"abc\0"  # exactly four: no padding
    assert string("abcd") == struct.pack(ENDIAN + "I", 5) + b"abcd\0\0\0\0"
    encoded = string("café")  # five UTF-8 bytes, six with the NUL
    assert encoded[:4] == struct.pack(ENDIAN + "I", 6) and encoded[4:10] == "café".encode() + b"\0"
    assert len(encoded) % 4 == 0


def test_a_message_header_holds_the_object_the_size_and_the_opcode():
    data = message(7, 3, uint(42), int32(-1))
    obj, size_opcode = struct.unpack_from(ENDIAN + "II", data)
    assert obj == 7 and size_opcode >> 16 == len(data) == 16 and size_opcode & 0xFFFF == 3
    assert struct.unpack_from(ENDIAN + "Ii", data, 8) == (42, -1)
    with pytest.raises(ValueError, match="4096"):
        message(7, 0, string("x" * 4100))


def test_the_reader_cuts_the_stream_into_messages_however_it_arrives():
    stream = message(3, 0, string("hello")) + message(4, 5) + message(9, 2, uint(1), uint(2))
    for step in (1, 3, 7, len(stream)):
        reader = Reader()
        got = [msg for at in range(0, len(stream), step) for msg in reader.feed(stream[at : at + step])]
        assert [(m.obj, m.opcode) for m in got] == [(3, 0), (4, 5), (9, 2)]
        assert got[0].args().string() == b"hello" and got[1].body == b""
        args = got[2].args()
        assert (args.uint(), args.uint()) == (1, 2)
    with pytest.raises(WireError, match="shorter than its header"):
        list(Reader().feed(struct.pack(ENDIAN + "II", 1, 4 << 16)))


def test_arguments_past_the_end_of_a_message_are_an_error_not_garbage():
    with pytest.raises(WireError):
        Args(b"\1\0").uint()
    with pytest.raises(WireError, match="NUL"):
        Args(struct.pack(ENDIAN + "I", 4) + b"abcd").string()  # no NUL where the length says
    with pytest.raises(WireError, match="runs past"):
        Args(struct.pack(ENDIAN + "I", 40) + b"ab\0\0").string()
    assert Args(struct.pack(ENDIAN + "I", 0)).string() == b""  # a null string
    assert Message(1, 0, int32(-5)).args().int32() == -5


def test_the_socket_is_found_as_libwayland_finds_it(tmp_path):
    assert socket_path({"WAYLAND_DISPLAY": "/abs/wl-1"}) == wayland_wire.Path("/abs/wl-1")
    assert socket_path({"WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": "/run/user/1"}) == wayland_wire.Path(
        "/run/user/1/wayland-0"
    )
    assert socket_path({"XDG_RUNTIME_DIR": "/run/user/1"}) is None  # no Wayland session
    assert socket_path({"WAYLAND_DISPLAY": "wayland-0"}) is None  # a relative name needs the runtime dir
    # Nothing listening there: no globals, not offered, and no exception for the caller to catch.
    assert wayland_wire.offered_globals({"WAYLAND_DISPLAY": str(tmp_path / "none")}) == {}
    assert not wayland.offered({"WAYLAND_DISPLAY": str(tmp_path / "none")})
    assert not wayland.offered({})


def test_a_compositor_that_never_answers_is_an_error_after_the_deadline(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "silent"))
    server.listen(1)
    try:
        conn = wayland_wire.Connection.open({"WAYLAND_DISPLAY": str(tmp_path / "silent")})
        conn.get_registry()
        with pytest.raises(WireError, match="did not answer"):
            conn.roundtrip(0.2)
        conn.close()
        assert wayland_wire.offered_globals({"WAYLAND_DISPLAY": str(tmp_path / "silent")}, timeout=0.2) == {}
    finally:
        server.close()


def test_long_text_is_cut_on_character_boundaries():
    text = "é" * 3000  # 6000 bytes
    chunks = wayland._chunks(text, 4000)
    assert [len(c) for c in chunks] == [4000, 2000] and b"".join(chunks).decode() == text
    odd = "a" + "é" * 2000  # 4001 bytes: a cut at 4000 would split a character
    assert [len(c) for c in wayland._chunks(odd, 4000)] == [3999, 2]
    # The newest words, never half a character: the last 4000 bytes begin inside the first "é".
    assert wayland._tail("é" * 2000 + "a", 4000) == ("é" * 1999 + "a").encode()
    assert wayland._tail("short", 4000) == b"short"


def test_password_pin_and_hidden_fields_are_private():
    assert not Field(1).private and not Field(1, Purpose.TERMINAL).private
    assert Field(1, Purpose.PASSWORD).private and Field(1, Purpose.PIN).private
    assert Field(1, hint=Hint.HIDDEN_TEXT).private and Field(1, hint=Hint.HIDDEN_TEXT | Hint.LATIN).private


def test_a_sensitive_data_hint_alone_is_an_ordinary_field():
    # GTK's PRIVATE hint (a browser's private window): "learn nothing from this", not a password.
    assert not Field(1, hint=Hint.SENSITIVE_DATA).private
    assert not Field(1, hint=Hint.SENSITIVE_DATA | Hint.LATIN | Hint.SPELLCHECK).private
    assert Field(1, Purpose.PASSWORD, Hint.SENSITIVE_DATA | Hint.HIDDEN_TEXT).private
    assert wayland._purpose(99) == Purpose.NORMAL  # a purpose from a newer protocol


def test_the_text_before_the_cursor_is_counted_in_bytes():
    text = "Déjà vu. ok".encode()
    cursor = len("Déjà vu.".encode())
    assert Surrounding(text, cursor, cursor).before_cursor == "Déjà vu."
    # The field's excerpt may begin inside a character: the stray byte is not text.
    assert Surrounding("é ok".encode()[1:], 4, 4).before_cursor == " ok"
    assert Field(1).before_cursor is None
    assert Field(1, surrounding=Surrounding(b"ab", 1, 1)).before_cursor == "a"
