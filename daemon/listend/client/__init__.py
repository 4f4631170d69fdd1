"""The client side of listend: a small asyncio client of ``io.github.listend.Dictation1``.

Used by listenctl, the tray and the input method; no daemon module imports
it. Its modules, one concern each:

- :mod:`.events`: the typed events (:data:`ClientEvent`) and how a signal
  becomes one (:func:`event_of`; a malformed one raises :class:`MalformedSignal`);
- :mod:`.names`: who owns a bus name and whether to trust it
  (:class:`NameOwner`, :class:`SignalGate`, :class:`PeerErrors`);
- :mod:`.dictation`: the method calls and the subscription
  (:class:`DictationClient`) and the errors a call raises, and the raw
  ``Properties.GetAll`` call (:func:`get_all_properties`) listend-ime also
  asks KWin with;
- :mod:`.delivery`: who delivers a refined segment (:func:`delivery_route`).

Any peer on the session bus can send a signal with listend's path and
interface. A signal counts only if its sender is the connection that owns
``io.github.listend`` right now (followed through ``NameOwnerChanged``, which
itself counts only from the bus daemon): a stranger's "SegmentRefined" is
never printed, copied or typed.

Any peer can also *own* the name while listend is absent (or queue for it).
So the owner itself is checked (:func:`holder_of`): a process of this user
whose command runs listend's program. An owner that is not is refused, said
once, and treated as no listend at all. The same check applies to
``listend-ime``'s name, on which the ``auto`` delivery rule
(:func:`delivery_route`) depends.

A malformed signal (a wrong signature, sent to us directly) is one counted,
rate-limited log line (:class:`PeerErrors`), never a traceback.

The bus addresses and the owner check (``listend.bus``) and the message bus
(``listend.dbusio``) stay in the ``listend`` package: the daemon uses them
too. Importers use the names below (``from listend.client import ...``);
the submodules are where they live.
"""

from __future__ import annotations

from ..bus import holder_of as holder_of
from ..ids import SeenIds as SeenIds  # its home is listend.ids; clients import it from here too
from .delivery import delivery_route as delivery_route
from .dictation import ERRORS as ERRORS
from .dictation import CallFailed as CallFailed
from .dictation import DictationClient as DictationClient
from .dictation import Failed as Failed
from .dictation import InvalidArgs as InvalidArgs
from .dictation import NotAvailable as NotAvailable
from .dictation import NotRunning as NotRunning
from .dictation import get_all_properties as get_all_properties
from .events import BUS_DAEMON as BUS_DAEMON
from .events import PROPERTIES as PROPERTIES
from .events import ClientEvent as ClientEvent
from .events import CommandEntry as CommandEntry
from .events import CommandEvent as CommandEvent
from .events import MalformedSignal as MalformedSignal
from .events import PartialEvent as PartialEvent
from .events import PresenceEvent as PresenceEvent
from .events import PressureEvent as PressureEvent
from .events import PropertiesEvent as PropertiesEvent
from .events import RetractedEvent as RetractedEvent
from .events import SegmentEvent as SegmentEvent
from .events import StateEvent as StateEvent
from .events import TranscriptEntry as TranscriptEntry
from .events import event_of as event_of
from .names import NameOwner as NameOwner
from .names import PeerErrors as PeerErrors
from .names import SignalGate as SignalGate
