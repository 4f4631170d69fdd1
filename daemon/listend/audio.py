"""What flows between the pipeline's stages: audio, utterances and the segmenter's events.

Every stage speaks these types: the segmenter makes them, capture stamps and
routes them, the router queues them, the decoders read their audio, commit
orders them by id, and :mod:`unfinished` keeps their audio. They live here,
below every stage, so that no stage imports another only for its types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .units import SAMPLE_RATE

Audio = npt.NDArray[np.float32]
"""16 kHz mono float32 samples."""


@dataclass
class Utterance:
    """A closed stretch of speech, ready for decoding."""

    id: int
    start_sample: int  # on the audio clock; capture rebases it to its session
    audio: Audio  # owned by this object
    #: Unix time of the first sample, stamped by capture when the utterance
    #: closes (a reconnect later must not move it).
    wall_start: float = 0.0
    #: Closed because the audio stopped mid-speech (a device lost, a stalled
    #: stream), not at a pause: its text may end mid-sentence, so it is no
    #: context for what is said after the audio comes back.
    cut: bool = False

    @property
    def start(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end(self) -> float:
        return (self.start_sample + len(self.audio)) / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def nbytes(self) -> int:
        return self.audio.nbytes


@dataclass(frozen=True)
class Pause:
    """The open utterance may be over: ``speech_pad_ms`` of silence follow its speech.

    ``audio`` (a copy) is what the utterance will hold if it closes at this
    pause; ``start_sample`` is on the audio clock, like an utterance's.
    """

    id: int
    start_sample: int
    audio: Audio


@dataclass(frozen=True)
class Resume:
    """Speech came back before the utterance ``id`` closed: its last :class:`Pause` is void."""

    id: int


@dataclass(frozen=True)
class OpenSnapshot:
    """A copy of the open utterance's audio, taken for a live decode."""

    id: int
    audio: Audio
    end_sample: int


SegmenterEvent = Utterance | Pause | Resume
