"""Moonshine's pure parts: the tokenizer file, the token cap and the repetition guard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from listend.moonshine import load_tokens, max_tokens, repeating, trim_repetition
from listend.moonshine_cache import MANIFEST_MAX_BYTES, read_manifest
from listend.units import SAMPLE_RATE


def test_the_tokenizer_reads_one_and_two_byte_lengths(tmp_path: Path) -> None:
    long = b"x" * 200
    data = (
        bytes([5]) + b"<unk>" + bytes([0]) + bytes([128 + 200 % 128, 200 // 128]) + long + bytes([3]) + b"\xe2\x96\x81"
    )
    (tmp_path / "tokenizer.bin").write_bytes(data)
    assert load_tokens(tmp_path / "tokenizer.bin") == [b"<unk>", b"", long, "\u2581".encode()]
    (tmp_path / "tokenizer.bin").write_bytes(bytes([9]) + b"short")
    with pytest.raises(ValueError, match="ends inside a token"):
        load_tokens(tmp_path / "tokenizer.bin")


def test_the_token_cap_follows_the_audio() -> None:
    assert max_tokens(0) == 10
    assert max_tokens(10 * SAMPLE_RATE) == 75  # 6.5 a second: speech rarely has more than 4


@pytest.mark.parametrize(
    "ids, looping, trimmed",
    [
        ([5, 6, 7, 8], False, [5, 6, 7, 8]),
        ([9, 9, 9, 9, 9, 9, 9], False, [9] * 7),  # "no no no no no no no" can be speech
        ([4] + [9] * 8, True, [4, 9]),
        ([1, 2] + [3, 4] * 4, True, [1, 2, 3, 4]),
        ([7] + [1, 2, 3] * 4, True, [7, 1, 2, 3]),
        ([1, 2, 3] * 3, False, [1, 2, 3] * 3),
    ],
)
def test_a_looping_tail_is_caught_and_cut_back_to_one_occurrence(
    ids: list[int], looping: bool, trimmed: list[int]
) -> None:
    assert repeating(ids) is looping
    assert trim_repetition(ids) == trimmed


def test_a_manifest_that_is_not_a_small_regular_json_file_reads_as_none_without_hanging(tmp_path: Path) -> None:
    """A FIFO hung every start, /dev/zero grew the daemon to 4 GB, deep nesting was a RecursionError."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"converter": 1}))
    assert read_manifest(good) == {"converter": 1}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    link = tmp_path / "link.json"
    link.symlink_to(good)  # even a link to a good manifest: the cache is rebuilt as a real file
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    deep_but_small = tmp_path / "deep.json"
    deep_but_small.write_text('{"a":' * 5000 + "1" + "}" * 5000)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"x": "y" * (MANIFEST_MAX_BYTES + 1)}))
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    for path in (fifo, zero, link, nested, deep_but_small, huge, listed, tmp_path / "missing.json", tmp_path):
        assert read_manifest(path) is None, path
