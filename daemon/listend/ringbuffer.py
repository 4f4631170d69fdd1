"""A preallocated single-producer / single-consumer ring of audio samples.

The producer is the PortAudio callback (or a file reader thread), the
consumer the segmenter thread. Writing never allocates, never takes a lock
and never blocks: when the consumer has fallen so far behind that the ring is
full, the samples that do not fit are counted in :attr:`RingBuffer.dropped`
and reported -- the only place listend can lose audio, and never silently.

Indices are monotonically increasing Python ints; each is written by one
thread only, and reading an int attribute is atomic under the GIL.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Fixed-size float32 ring buffer.

    Parameters
    ----------
    capacity : int
        Number of samples the ring holds.
    """

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._buf = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self._written = 0  # total samples ever written (producer-owned)
        self._read = 0  # total samples ever read (consumer-owned)
        self.dropped = 0  # samples that did not fit (producer-owned)
        self.high_water = 0  # most samples ever waiting (producer-owned)

    @property
    def nbytes(self) -> int:
        return self._buf.nbytes

    @property
    def available(self) -> int:
        """Samples waiting to be read."""
        return self._written - self._read

    @property
    def free(self) -> int:
        return self.capacity - self.available

    @property
    def total_written(self) -> int:
        return self._written

    def write(self, samples: np.ndarray) -> int:
        """Copy ``samples`` in; return how many fit. Never blocks or allocates."""
        n = min(len(samples), self.capacity - (self._written - self._read))
        if n < len(samples):
            self.dropped += len(samples) - n
        if n <= 0:
            return 0
        pos = self._written % self.capacity
        first = min(n, self.capacity - pos)
        self._buf[pos : pos + first] = samples[:first]
        if first < n:
            self._buf[: n - first] = samples[first:n]
        self._written += n
        waiting = self._written - self._read
        self.high_water = max(self.high_water, waiting)
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Move up to ``len(out)`` samples into ``out``; return how many."""
        n = min(len(out), self._written - self._read)
        if n <= 0:
            return 0
        pos = self._read % self.capacity
        first = min(n, self.capacity - pos)
        out[:first] = self._buf[pos : pos + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        self._read += n
        return n
