"""Moonshine's pure parts: the tokenizer file, the token cap and the repetition guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from listend.moonshine import load_tokens, max_tokens, repeating, trim_repetition
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
