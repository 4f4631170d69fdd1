"""How a stage tells whoever supervises it that something went wrong.

Every stage that runs a thread of its own (capture's segmenter thread, the
live and refine workers, commit's publisher) is handed a :class:`Supervisor`
when it is built. A failure on one item is reported and the stage goes on; a
thread that dies is reported once, and the supervisor (the engine) puts the
pipeline in ``error``, stops feeding the watchdog and keeps what waits as
audio.
"""

from __future__ import annotations

from typing import Protocol


class Supervisor(Protocol):
    def failed(self, stage: str, message: str) -> None:
        """One item failed in ``stage`` (a decode raised); the stage goes on."""
        ...

    def died(self, stage: str, message: str) -> None:
        """The thread of ``stage`` died; ``message`` says why."""
        ...
