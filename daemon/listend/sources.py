"""Audio sources: the microphone and file replay, both feeding a :class:`RingBuffer`.

Every source delivers 16 kHz mono float32 samples into the ring the engine
gives it. The engine reads the audio clock from the samples it consumes, so
timestamps are the same whether audio comes from a microphone or a file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from .ringbuffer import RingBuffer
from .units import SAMPLE_RATE


class SourceError(RuntimeError):
    """The source cannot deliver audio (no such device, not an audio file, ...)."""


@dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio lists it."""

    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool


def list_input_devices(fresh: bool = False) -> list[InputDevice]:
    """Every device with at least one input channel (``fresh``: rescan, e.g. after a plug-in)."""
    try:
        import sounddevice as sd
    except OSError as e:  # libportaudio2 missing
        raise SourceError(f"PortAudio is not available: {e} (apt install libportaudio2)") from None
    with MicrophoneSource._portaudio:
        if fresh:
            _restart_portaudio(sd)
        default = sd.default.device[0]
        return [
            InputDevice(d["index"], d["name"], d["max_input_channels"], d["default_samplerate"], d["index"] == default)
            for d in sd.query_devices()
            if d["max_input_channels"] > 0
        ]


_portaudio_restarts = 0  # written with MicrophoneSource._portaudio held


def portaudio_restarts() -> int:
    """How many times this process re-initialised PortAudio to see the devices as they are now."""
    return _portaudio_restarts


def _restart_portaudio(sd: Any) -> None:
    """A fresh PortAudio session (lock held): it lists devices once, when it starts.

    An audio server that came up after listend (a user unit started with the login, before PipeWire or
    PulseAudio) or restarted, and a microphone plugged in since, are only seen by a new session. Streams of
    this process end with the old one: callers do this only while none of listend's is open.
    """
    global _portaudio_restarts
    sd._terminate()
    sd._initialize()
    _portaudio_restarts += 1


def describe_devices(devices: list[InputDevice]) -> str:
    return ", ".join(f"{d.index} {d.name!r}" + (" (default)" if d.is_default else "") for d in devices)


_WHAT_TO_DO = (
    "choose one with --device NAME|INDEX or [audio] device in config.toml, or replay a file with "
    "--source FILE; `listenctl devices` lists the inputs"
)


class AudioSource(Protocol):
    """What the engine needs from a source of audio."""

    description: str
    #: True when the source can be paused (a file read as fast as possible):
    #: the pipeline then waits instead of degrading when it falls behind.
    can_wait: bool

    def start(self, ring: RingBuffer) -> None: ...

    def stop(self) -> None: ...

    @property
    def finished(self) -> bool:
        """True once the source will deliver no more audio (end of file, device gone)."""
        ...

    @property
    def error(self) -> str | None: ...

    @property
    def overflows(self) -> int:
        """How many times the device reported an input overflow."""
        ...

    @property
    def lost_samples(self) -> int:
        """Samples lost before they reached listend (the audio server overran), as far as known."""
        ...


class MicrophoneSource:
    """Capture from an input device through PortAudio (python-sounddevice).

    Parameters
    ----------
    device : str
        Device index or (part of a) name; ``""`` for the default input.
    block_ms : int
        Length of one capture block.

    Notes
    -----
    The PortAudio callback only copies the block into the preallocated ring
    and returns: it never blocks, allocates or logs. Device-reported input
    overflows are counted in :attr:`overflows`.
    """

    can_wait = False
    # PortAudio is one library state per process: opening, closing and
    # re-scanning from two threads at once crashes it (seen: SIGSEGV when a
    # D-Bus Start raced a reconnect attempt). All such calls take this lock.
    _portaudio = threading.Lock()
    #: Seconds without a callback before the device counts as gone (PulseAudio
    #: takes up to ~1.5 s to deliver the first block).
    stall_timeout = 3.0

    def __init__(self, device: str = "", block_ms: int = 32, rescan: bool = False):
        self._device_arg = device
        self._rescan = rescan
        self._block = int(SAMPLE_RATE * block_ms / 1000)
        self._stream: Any = None  # a sounddevice.InputStream while open
        self._ring: RingBuffer | None = None
        self._overflows = 0
        self._error: str | None = None
        self._stopping = False
        self._blocks = 0  # callbacks so far (written by the callback only)
        self._frames = 0  # samples delivered so far (written by the callback only)
        self._first_block_at = 0.0  # monotonic time of the first callback (written by the callback only)
        self._seen_blocks = 0
        self._seen_at = 0.0
        self._checked_at = 0.0  # when finished was last asked (by the segmenter thread)
        self.description = f"microphone {device or '(default)'}"

    @staticmethod
    def check_device_argument(device: str) -> None:
        """Raise :class:`SourceError` if ``device`` cannot name an input device (an index out of range)."""
        from .config import check_device

        problem = check_device(device)
        if problem:
            raise SourceError(f"--device: {problem}")

    def _resolve_device(self) -> int | str | None:
        if self._device_arg == "":
            return None
        if self._device_arg.isdigit():
            return int(self._device_arg)
        return self._device_arg  # sounddevice matches substrings of names

    def start(self, ring: RingBuffer) -> None:
        try:
            import sounddevice as sd
        except OSError as e:  # libportaudio2 missing
            raise SourceError(f"PortAudio is not available: {e}") from None
        self._ring = ring
        self._stopping = False
        self._error = None
        self._seen_at = time.monotonic()
        with self._portaudio:
            self._open(sd)
        self.description = f"microphone {self._stream.device!r}"

    def _open(self, sd: Any) -> None:
        """Open and start the stream (lock held); a failure on PortAudio's old device list is retried on a new one."""
        if self._rescan:  # a reopen after a failure: the device (or the audio server) may have changed
            _restart_portaudio(sd)
        try:
            self._open_stream(sd)
            return
        except (sd.PortAudioError, ValueError, OverflowError) as e:
            self._stream = None
            if self._rescan:
                raise SourceError(self._explain(sd, e)) from None
        # The device list PortAudio made when listend started may be stale: no device (the audio server was not
        # up yet), or not this one. Once more on a fresh list; nothing of listend's is capturing meanwhile.
        _restart_portaudio(sd)
        try:
            self._open_stream(sd)
        except (sd.PortAudioError, ValueError, OverflowError) as e:
            self._stream = None
            raise SourceError(self._explain(sd, e)) from None

    def _open_stream(self, sd: Any) -> None:
        self._stream = sd.InputStream(
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype="float32",
            blocksize=self._block,
            device=self._resolve_device(),
            callback=self._callback,
            finished_callback=self._on_finished,
        )
        self._stream.start()

    def _explain(self, sd: Any, error: Exception) -> str:
        """What went wrong opening the device, and what the user can do (lock held)."""
        try:
            devices = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
        except sd.PortAudioError:
            devices = []
        if not devices:
            return (
                "no input device found: no microphone is connected, or the audio server (PipeWire/"
                f"PulseAudio) is not running; connect one, or {_WHAT_TO_DO}"
            )
        default = sd.default.device[0]
        listed = describe_devices(
            [
                InputDevice(
                    d["index"], d["name"], d["max_input_channels"], d["default_samplerate"], d["index"] == default
                )
                for d in devices
            ]
        )
        if self._device_arg:
            return f"cannot open input device {self._device_arg!r} ({_short(error)}); inputs: {listed}"
        return f"cannot open the default input device ({_short(error)}); inputs: {listed}; {_WHAT_TO_DO}"

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if not self._blocks:
            self._first_block_at = time.monotonic()
        self._blocks += 1
        self._frames += frames
        if status.input_overflow:
            self._overflows += 1
        ring = self._ring
        if ring is not None:
            ring.write(indata[:, 0])

    def _on_finished(self) -> None:
        if not self._stopping:
            self._error = "the input device stopped delivering audio"

    def stop(self) -> None:
        self._stopping = True
        stream, self._stream = self._stream, None
        if stream is not None:
            with self._portaudio:
                try:
                    stream.abort()
                    stream.close()
                except Exception:
                    pass

    @property
    def finished(self) -> bool:
        """True once the device failed or stopped delivering blocks."""
        if self._error is None and self._stream is not None:
            now = time.monotonic()
            if now - self._checked_at > 1.0:
                # We were not running (SIGSTOP, a debugger, a swap storm): the audio
                # server kept recording and is about to deliver it. Silence while we
                # could not listen is no stall; start the stall window afresh.
                self._seen_at = now
            self._checked_at = now
            if self._blocks != self._seen_blocks:
                self._seen_blocks, self._seen_at = self._blocks, now
            elif now - self._seen_at > self.stall_timeout:
                self._error = f"no audio from the input device for {self.stall_timeout:.0f} s"
        return self._error is not None

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def overflows(self) -> int:
        return self._overflows

    @property
    def lost_samples(self) -> int:
        """Samples the device clock says were spoken but never delivered.

        A process that was stopped (SIGSTOP, a debugger, a swap storm) gets
        no callbacks; the audio server buffers a second or two and drops the
        rest without telling the client. Comparing samples delivered with the
        time since the first block shows it. It is an estimate: up to
        ``_LOST_TOLERANCE_S`` of late delivery (and the sound card's clock
        drift, ~0.2 s an hour at 50 ppm) is not counted as loss.
        """
        if not self._first_block_at:
            return 0
        expected = (time.monotonic() - self._first_block_at) * SAMPLE_RATE
        return max(0, int(expected - self._frames - self._LOST_TOLERANCE_S * SAMPLE_RATE))

    _LOST_TOLERANCE_S = 1.0


class FileSource:
    """Replay an audio file (any format PyAV decodes) resampled to 16 kHz mono.

    Parameters
    ----------
    path : str
        The file to read.
    realtime : bool
        Pace delivery at the speed of the audio (like a microphone). When
        false, deliver as fast as the pipeline consumes it.

    The file is decoded as a stream, a block at a time: a multi-hour file
    never sits in memory whole.
    """

    _BLOCK_S = 0.1

    def __init__(self, path: str, realtime: bool = False):
        self.path = str(path)
        self.realtime = realtime
        self.can_wait = not realtime
        self.description = f"file {self.path}"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._error: str | None = None
        self.warning: str | None = None
        self.samples_delivered = 0
        self.started_at = 0.0  # time.monotonic() when delivery began: sample n is "captured" at started_at + n/16000
        self.probe()

    def probe(self) -> None:
        """Check now that the file exists and holds an audio stream."""
        import av

        try:
            with av.open(self.path) as container:
                if not container.streams.audio:
                    raise SourceError(f"{self.path}: no audio stream in file")
        except SourceError:
            raise
        except FileNotFoundError:
            raise SourceError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise SourceError(f"{self.path}: is a directory") from None
        except PermissionError:
            raise SourceError(f"{self.path}: permission denied") from None
        except av.error.InvalidDataError:
            raise SourceError(f"{self.path}: not a readable audio file (no audio format FFmpeg knows)") from None
        except (av.error.FFmpegError, OSError, ValueError) as e:
            # FFmpeg's errors carry its own error code ("[Errno 1094995529] ..."): the reason alone is what helps.
            reason = getattr(e, "strerror", None) or _short(e)
            raise SourceError(f"{self.path}: not a readable audio file ({reason})") from None

    def start(self, ring: RingBuffer) -> None:
        self._thread = threading.Thread(target=self._run, args=(ring,), name="listend-file", daemon=True)
        self._thread.start()

    def _blocks(self):
        """Yield float32 mono 16 kHz arrays decoded from the file."""
        import av

        container = av.open(self.path)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            stream = container.streams.audio[0]
            stream.thread_type = "AUTO"  # type: ignore[attr-defined]
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(-1)
                    if self._stop.is_set():
                        return
            except (av.error.FFmpegError, ValueError) as e:
                self.warning = f"{self.path}: decoding stopped early ({_short(e)}); using the audio read so far"
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1)
        finally:
            # Free PyAV objects explicitly (faster-whisper #390: leaked resamplers).
            del resampler
            container.close()

    def _run(self, ring: RingBuffer) -> None:
        started = self.started_at = time.monotonic()
        try:
            for block in self._blocks():
                offset = 0
                while offset < len(block) and not self._stop.is_set():
                    if self.realtime:
                        due = started + self.samples_delivered / SAMPLE_RATE
                        delay = due - time.monotonic()
                        if delay > 0:
                            self._stop.wait(delay)
                        step = min(len(block) - offset, int(SAMPLE_RATE * self._BLOCK_S))
                    else:
                        step = min(len(block) - offset, ring.free)
                        if step == 0:
                            self._stop.wait(0.005)  # the pipeline is behind: wait, never drop
                            continue
                    written = ring.write(block[offset : offset + step])
                    # Paced like a microphone, what did not fit is gone (and
                    # counted by the ring); unpaced, nothing is skipped.
                    consumed = step if self.realtime else written
                    offset += consumed
                    self.samples_delivered += consumed
                if self._stop.is_set():
                    break
        except Exception as e:  # decoding errors must not kill the pipeline silently
            self._error = f"{self.path}: {_short(e)}"
        finally:
            self._finished.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def overflows(self) -> int:
        return 0

    @property
    def lost_samples(self) -> int:
        return 0  # paced or not, what does not fit the ring is counted there as dropped


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]
