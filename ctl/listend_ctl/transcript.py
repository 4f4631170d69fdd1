"""``listenctl transcript`` and ``listenctl copy``: the history as said, followed live, typed, or copied as meant.

A voice command's segment is shown as what it does and applied when copying; ``--follow --type`` types new
segments only while the one delivery rule (``[delivery] method``) says this process types.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import sys
from typing import Any

from listend.bus import notification
from listend.client import (
    CallFailed,
    ClientEvent,
    CommandEntry,
    CommandEvent,
    DictationClient,
    PresenceEvent,
    SeenIds,
    SegmentEvent,
    TranscriptEntry,
)
from listend.cliutil import EXIT_FAIL, EXIT_OK
from listend.commands import as_meant, command_label


def _format_entry(e: TranscriptEntry, as_json: bool, command: CommandEntry | None = None) -> str:
    """One segment; a voice command is shown as what it does (``[new line]``; ``[scratch that] #12``)."""
    if as_json:
        record: dict[str, Any] = {"id": e.id, "start": e.start, "end": e.end, "text": e.text}
        if command is not None:
            record.update(command=command.action, target=command.target)
        return json.dumps(record, ensure_ascii=False)
    when = datetime.datetime.fromtimestamp(e.start)
    # A time alone is today's; any other day carries its date.
    stamp = when.strftime("%H:%M:%S" if when.date() == datetime.date.today() else "%Y-%m-%d %H:%M:%S")
    if command is not None:
        target = f" #{command.target}" if command.target else ""
        return f"{e.id}\t{stamp}\t{command_label(command.action)}{target}"
    return f"{e.id}\t{stamp}\t{e.text}"


async def _commands_of(client: DictationClient, entries: list[TranscriptEntry]) -> dict[int, CommandEntry]:
    """The command segments among ``entries`` (a daemon without ``GetCommands``: none)."""
    if not entries:
        return {}
    try:
        found = await client.commands(entries[0].id - 1, len(entries))
    except CallFailed as e:
        if "UnknownMethod" in e.name:
            return {}
        raise
    return {c.id: c for c in found}


async def run_transcript(client: DictationClient, args: argparse.Namespace) -> int:
    queue: asyncio.Queue[TranscriptEntry | None] = asyncio.Queue()
    commands: dict[int, CommandEntry] = {}  # SegmentCommand comes just before its SegmentRefined
    if args.follow:
        # Subscribe before reading what exists, so nothing falls in between.
        def on_event(event: ClientEvent) -> None:
            if isinstance(event, CommandEvent):
                commands[event.id] = CommandEntry(event.id, event.action, event.target)
            elif isinstance(event, SegmentEvent):
                queue.put_nowait(event.entry)
            elif isinstance(event, PresenceEvent) and not event.running:
                queue.put_nowait(None)

        await client.subscribe(on_event)
    seen = SeenIds(0 if args.since is None else args.since)
    if args.last is not None:
        entries = await client.recent(args.last)
    elif args.follow and args.since is None:
        # Following starts now: what was said before needs --last N or --since ID.
        seen.floor = await client.get("LastSegmentId")
        entries = []
    else:
        entries = await client.transcript(seen.floor, 0)
    earlier = await _commands_of(client, entries)
    for e in entries:
        if seen.first_time(e.id):
            print(_format_entry(e, args.json, earlier.get(e.id)), flush=True)
    typist = None
    if args.type:
        from listend_desktop.typist import Typist, command_refusal_notice, refusal_notice

        loop = asyncio.get_running_loop()

        def refused(reason: str) -> None:
            print(f"listenctl: typing refused ({reason}); refined text goes to the clipboard", file=sys.stderr)
            asyncio.run_coroutine_threadsafe(client.bus.call(notification(*refusal_notice(reason))), loop)

        def command_refused(reason: str) -> None:
            print(f"listenctl: voice command not carried out: {reason}", file=sys.stderr)
            asyncio.run_coroutine_threadsafe(client.bus.call(notification(*command_refusal_notice(reason))), loop)

        typist = Typist(on_refused=refused, on_command_refused=command_refused)
        if not await _take_typist_name(client):
            typist = None
    said_why = ""
    while args.follow:
        entry = await queue.get()
        if entry is None:
            print("listenctl: listend stopped", file=sys.stderr)
            return EXIT_FAIL
        if seen.first_time(entry.id):  # every segment once, whatever the order it comes in
            command = commands.pop(entry.id, None)
            print(_format_entry(entry, args.json, command), flush=True)
            if typist is not None:
                why = await _why_not_type(client)  # one rule decides who delivers: [delivery] method
                if why is None and command is not None:
                    await asyncio.to_thread(typist.execute, command.action)  # never its words
                elif why is None:
                    await asyncio.to_thread(typist.type_segment, entry.text)
                elif why != said_why:
                    print(f"listenctl: not typing: {why}", file=sys.stderr)
                said_why = why or ""
    return EXIT_OK


async def _take_typist_name(client: DictationClient) -> bool:
    """Own the typist's name, so that the tray leaves typing to this process; False if another one types."""
    from dbus_next.constants import NameFlag, RequestNameReply

    from listend.bus import TYPIST_BUS_NAME, holder_of

    reply = await client.bus.request_name(TYPIST_BUS_NAME, NameFlag.DO_NOT_QUEUE)
    if reply in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
        return True
    holder = await holder_of(client.bus, TYPIST_BUS_NAME)
    if holder is not None and not holder.trusted:
        print(f"listenctl: not typing: {holder.refusal()} (the tray types)", file=sys.stderr)
    else:
        print(f"listenctl: not typing: {holder or 'another listenctl'} types already", file=sys.stderr)
    return False


async def _why_not_type(client: DictationClient) -> str | None:
    """None when ``--type`` should type (the delivery rule says ``type``), else why it should not."""
    from listend.client import delivery_route

    method = str(await client.get("Delivery"))
    ime = await client.input_method()
    route = delivery_route(method, bool(ime and ime.get("Connected")), typist=False)  # as if it were the tray
    if route == "type":
        return None
    if route == "ime":
        return f"delivery is '{method}' and listend-ime delivers (listenctl delivery type to type here)"
    return f"delivery is '{method}' (listenctl delivery type to type here)"


async def run_copy(client: DictationClient, session: bool) -> int:
    from listend_desktop.clipboard import Clipboard

    if session:  # the text as meant: scratched segments out, marks applied, line breaks
        first = await client.get("SessionFirstId")
        entries = await client.transcript(max(0, first - 1), 0) if first else []
        meant = await _commands_of(client, entries)
        text = as_meant(_meant_row(e, meant) for e in entries).strip()
    else:  # the last segment of text that stands, as meant (a command after it may have amended it)
        recent = await client.recent(50)
        meant = await _commands_of(client, recent)
        rows = [_meant_row(e, meant) for e in recent]
        scratched = {target for _, _, action, target in rows if action == "scratch_that"}
        standing = [r for r in rows if not r[2] and r[0] not in scratched]
        last = standing[-1][0] if standing else 0
        text = as_meant(r for r in rows if r[0] == last or (r[2] and r[3] == last and r[2] != "scratch_that"))
    if not text:
        if session and await client.recent(1):  # the history has text; this session has none
            print(
                "listenctl: nothing was said since the last start; `listenctl copy` copies the last segment, "
                "`listenctl transcript` prints earlier ones",
                file=sys.stderr,
            )
        else:
            print("listenctl: nothing to copy yet", file=sys.stderr)
        return EXIT_FAIL
    # The clipboard logs why it failed as a warning; listenctl says it once, below.
    logging.getLogger("listend.clipboard").addHandler(logging.NullHandler())
    copied = await asyncio.to_thread(Clipboard().copy_and_wait, text)
    if not copied:
        print(f"listenctl: cannot copy: {copied.detail}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _meant_row(e: TranscriptEntry, commands: dict[int, CommandEntry]) -> tuple[int, str, str, int]:
    """``(id, text, action, target)`` of a segment, as :func:`listend.commands.as_meant` reads it."""
    command = commands.get(e.id)
    return (e.id, e.text, command.action, command.target) if command else (e.id, e.text, "", 0)
