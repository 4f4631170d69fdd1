"""Streaming Silero VAD on the ONNX model that faster-whisper ships.

faster-whisper's own wrapper scores a whole file at once; dictation needs the
same network run incrementally, carrying the LSTM state and the 64-sample
context from one call to the next.
"""

from __future__ import annotations

import os

import numpy as np

CHUNK = 512  # samples per VAD decision (32 ms at 16 kHz), fixed by the model
_CONTEXT = 64
# Below this RMS (about -80 dBFS) a chunk is digital silence: skip the network
# (and reset its state) so a muted microphone costs almost no CPU.
_SILENCE_RMS = 1e-4


class StreamingVad:
    """Speech probability per 512-sample chunk, state carried across calls."""

    def __init__(self):
        import onnxruntime
        from faster_whisper.utils import get_assets_path

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        # The CPU arena grows with the largest batch ever seen and never
        # shrinks (faster-whisper PR #1198); without it memory stays flat.
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
            providers=["CPUExecutionProvider"],
            sess_options=opts,
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Return one probability per whole chunk in ``audio`` (length a multiple of 512)."""
        n = len(audio) // CHUNK
        probs = np.zeros(n, dtype=np.float32)
        if n == 0:
            return probs
        chunks = audio[: n * CHUNK].reshape(n, CHUNK)
        loud = np.sqrt(np.mean(chunks * chunks, axis=1)) >= _SILENCE_RMS
        # Every silent chunk resets the state, wherever the calls cut the stream: the same audio
        # gets the same probabilities whether it comes in hops (a microphone) or all at once (a
        # file), so `listend transcribe` cuts the utterances the live path cuts.
        i = 0
        while i < n:
            if not loud[i]:
                self.reset()
                i += 1
                continue
            j = i + 1
            while j < n and loud[j]:
                j += 1
            probs[i:j] = self._run(chunks[i:j])
            i = j
        return probs

    def _run(self, chunks: np.ndarray) -> np.ndarray:
        """The network over consecutive loud chunks, state carried (the model reads its batch in order)."""
        n = len(chunks)
        batch = np.empty((n, CHUNK + _CONTEXT), dtype=np.float32)
        batch[:, _CONTEXT:] = chunks
        batch[0, :_CONTEXT] = self._context
        if n > 1:
            batch[1:, :_CONTEXT] = chunks[:-1, -_CONTEXT:]
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = chunks[-1, -_CONTEXT:].copy()
        return np.asarray(out, dtype=np.float32).reshape(-1)[:n]
