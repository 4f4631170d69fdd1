"""``listenctl``: drive the listend daemon from scripts.

Exit codes: 0 success, 1 the daemon is not running (or failed the request),
2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from listend import __version__
from listend.bus import NoBusError
from listend.client import CallFailed, DictationClient, InvalidArgs, NotRunning
from listend.cliutil import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageParser
from listend.commands import command_label
from listend.config import DELIVERY_METHODS, PROFILES
from listend.units import MIB

from .transcript import run_copy, run_transcript

COMMANDS = (
    "status",
    "start",
    "stop",
    "toggle",
    "live",
    "transcript",
    "devices",
    "copy",
    "memory",
    "profile",
    "delivery",
    "language",
    "commands",
    "vocabulary",
    "monitor",
    "install",
    "uninstall",
)


async def _language(client: DictationClient, code: str | None) -> int:
    """``listenctl language [CODE|auto]``: pin or unpin, then say what is in force."""
    if code is not None:
        await client.call("PinLanguage", "s", ["" if code == "auto" else code])
    props = await client.get_all()
    language, pinned, languages = props["Language"], props["PinnedLanguage"], list(props["Languages"])
    if pinned:
        how = "pinned"
    elif len(languages) == 1:
        how = "the only language set"
    else:
        how = "detected within the set"
    shown = ", ".join(languages) if len(languages) <= 10 else f"any of Whisper's {len(languages)} (language = '')"
    print(f"{language} ({how}; languages: {shown})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="listenctl", description="Control the listend dictation daemon over D-Bus.")
    p.add_argument("--version", action="version", version=f"listenctl {__version__}")
    # Not required here: main() says which commands there are, and an unknown option is named as such
    # (argparse said "the following arguments are required: COMMAND" for `listenctl --bogus`).
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=UsageParser)
    s = sub.add_parser("status", help="state, profile, live line and memory")
    s.add_argument("--json", action="store_true")
    sub.add_parser("start", help="start listening")
    sub.add_parser("stop", help="stop listening (finishes what was heard)")
    sub.add_parser("toggle", help="start or stop; prints the new state")
    sub.add_parser("live", help="print the current live (partial) line")
    t = sub.add_parser("transcript", help="print refined segments")
    t.add_argument("--last", type=int, metavar="N", help="only the last N segments")
    t.add_argument("--since", type=int, metavar="ID", default=None, help="segments after id ID")
    t.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing segments as they are refined, from now on (add --last N or --since ID "
        "to print earlier ones first)",
    )
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.add_argument(
        "--type",
        action="store_true",
        help="with --follow: also type each refined segment into the focused window (wtype on wlroots "
        "Wayland, xdotool on X11; where typing is refused, the clipboard) when the delivery method says "
        "type (auto: while listend-ime is not there); otherwise it says why it does not",
    )
    dv = sub.add_parser("devices", help="list audio input devices (works without the daemon)")
    dv.add_argument("--json", action="store_true")
    cp = sub.add_parser(
        "copy",
        help="copy the last refined segment (or this session's text) to the clipboard",
        description="Copy refined text to the clipboard (wl-copy on Wayland, xclip/xsel on X11, "
        "a Tk clipboard owner where a helper cannot serve).",
    )
    cp.add_argument("--session", action="store_true", help="all segments of the current (or last) listening session")
    m = sub.add_parser("memory", help="memory and queue figures")
    m.add_argument("--watch", action="store_true", help="print again every second")
    m.add_argument("--json", action="store_true")
    pr = sub.add_parser("profile", help="show or set the profile")
    pr.add_argument("profile", nargs="?", choices=PROFILES)
    dl = sub.add_parser(
        "delivery",
        help="show or set where refined text goes (for this run; [delivery] method is the lasting choice)",
        description="auto: the input method (listend-ime) when IBus runs, else typed by the tray; ime: the input "
        "method only; type: typed by the tray; clipboard: copied by the tray.",
    )
    dl.add_argument("method", nargs="?", choices=DELIVERY_METHODS)
    lg = sub.add_parser(
        "language",
        help="show the language in force and your set; pin one for now, or 'auto' to detect within the set",
        description="Without an argument: the language in force, whether it is pinned, and the languages set "
        "([decode] languages). A code pins that language for this run (no detection); auto unpins.",
    )
    lg.add_argument("language", nargs="?", metavar="CODE|auto")
    cm = sub.add_parser(
        "commands",
        help="list what can be said: the voice command phrases in force ([commands] in the config)",
    )
    cm.add_argument("--json", action="store_true")
    vo = sub.add_parser(
        "vocabulary",
        help="list, add or remove words and names listend should expect",
        description="Words added here are kept by listend (in its state directory) beside the config's "
        "[vocabulary] words; remove a config word in the config.",
    )
    vo.add_argument("action", choices=("list", "add", "remove"))
    vo.add_argument("words", nargs="*", metavar="WORD", help="for add/remove: each a word or a quoted name")
    mon = sub.add_parser("monitor", help="watch listend's RSS/CPU from outside (works without the bus)")
    mon.add_argument("pid", nargs="?", type=int, help="process id (default: find listend processes)")
    mon.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between samples")
    mon.add_argument("--count", type=int, default=0, metavar="N", help="stop after N samples (0 = until Ctrl-C)")
    mon.add_argument("--csv", metavar="FILE", help="also write samples to a CSV file")
    mon.add_argument("--plot", metavar="FILE.png", help="write a PNG plot of RSS over time at the end")
    ins = sub.add_parser("install", help="install the systemd user unit, D-Bus activation and autostart files")
    ins.add_argument("--now", action="store_true", help="also enable and start the service")
    ins.add_argument(
        "--kwin-input-method",
        action=argparse.BooleanOptionalAction,
        help="KDE Plasma: make IBus KWin's input method if none is set (default: ask on a terminal)",
    )
    sub.add_parser("uninstall", help="remove what install wrote, and say what stays")
    assert tuple(sub.choices) == COMMANDS  # the list main() names
    return p


def _print_memory(mem: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(mem, sort_keys=True), flush=True)
        return
    for key in sorted(mem):
        value = mem[key]
        if key.endswith("_bytes"):
            value = f"{value / MIB:.1f} MiB"
        print(f"{key}: {value}")
    print(flush=True)


def _devices(as_json: bool) -> int:
    from listend.sources import SourceError, list_input_devices

    try:
        devices = list_input_devices()
    except SourceError as e:
        print(f"listenctl: {e}", file=sys.stderr)
        return EXIT_FAIL
    if as_json:
        print(
            json.dumps(
                [{"index": d.index, "name": d.name, "channels": d.channels, "default": d.is_default} for d in devices]
            )
        )
    elif not devices:
        print("listenctl: no input device found (no microphone connected, or no audio server running)", file=sys.stderr)
        return EXIT_FAIL
    else:
        for d in devices:
            print(
                f"{'*' if d.is_default else ' '} {d.index:3d}  {d.name}  ({d.channels} ch, "
                f"{d.default_samplerate:.0f} Hz)"
            )
    return EXIT_OK


async def _commands(client: DictationClient, as_json: bool) -> int:
    phrases, off = await client.command_phrases()
    if as_json:
        table: dict[str, list[str]] = {}
        for action, phrase in phrases:
            table.setdefault(action, []).append(phrase)
        print(json.dumps({"phrases": table, "off": off}, ensure_ascii=False))
        return EXIT_OK
    for action, phrase in phrases:
        print(f"{phrase}\t{command_label(action)}")
    if off:
        print(f"off: {', '.join(off)}")
    return EXIT_OK


async def _vocabulary(client: DictationClient, action: str, words: list[str]) -> int:
    for word in words:
        if action == "add":
            await client.add_vocabulary(word)
        else:
            await client.remove_vocabulary(word)
    for word in await client.vocabulary():
        print(word)
    return EXIT_OK


async def _run(args: argparse.Namespace) -> int:
    client = await DictationClient.connect()
    try:
        c = args.command
        if c == "status":
            props = await client.get_all()
            if args.json:
                props["InputMethod"] = await client.input_method()
                print(json.dumps(props, sort_keys=True))
            else:
                print(
                    f"state: {props['State']}\nprofile: {props['Profile']}\n"
                    f"memory: {props['RssBytes'] / MIB:.0f} MiB\nlive: {props['LiveText']}"
                )
                if props.get("LastError"):
                    print(f"error: {props['LastError']}")
                print(f"delivery: {props.get('Delivery', 'auto')}")
                if props.get("Language"):
                    print(f"language: {props['Language']}{' (pinned)' if props.get('PinnedLanguage') else ''}")
                ime = await client.input_method()
                if ime is None:
                    print("input method: not running")
                else:
                    where = "active" if ime["Active"] else ("ready" if ime["Connected"] else "waiting for IBus")
                    print(
                        f"input method: {where}, delivered {ime['Delivered']}, unconfirmed {ime['Unconfirmed']}, "
                        f"failed {ime['Failed']}, commands refused {ime.get('Refused', 0)}, "
                        f"withheld from password fields {ime.get('Withheld', 0)}"
                    )
        elif c == "start":
            await client.call("Start")
        elif c == "stop":
            await client.call("Stop")
        elif c == "toggle":
            listening = (await client.call("Toggle"))[0]
            print("listening" if listening else "idle")
        elif c == "live":
            print(await client.get("LiveText"))
        elif c == "copy":
            return await run_copy(client, args.session)
        elif c == "transcript":
            return await run_transcript(client, args)
        elif c == "memory":
            while True:
                _print_memory(await client.memory(), args.json)
                if not args.watch:
                    break
                await asyncio.sleep(1.0)
        elif c == "commands":
            return await _commands(client, args.json)
        elif c == "vocabulary":
            return await _vocabulary(client, args.action, args.words)
        elif c == "language":
            return await _language(client, args.language)
        elif c == "delivery":
            if args.method:
                await client.call("SetDelivery", "s", [args.method])
            print(await client.get("Delivery"))
        elif c == "profile":
            if args.profile:
                await client.call("SetProfile", "s", [args.profile])
            print(await client.get("Profile"))
    finally:
        client.close()
    return EXIT_OK


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> None:
    """Usage errors, one line and exit 2, before anything connects to the bus."""
    if unknown:
        parser.error(f"unknown option {unknown[0]!r}" if unknown[0].startswith("-") else f"unexpected {unknown[0]!r}")
    if args.command is None:
        parser.error(f"which command? one of: {', '.join(COMMANDS)}")
    if args.command == "transcript":
        if args.last is not None and args.last < 0 or args.since is not None and args.since < 0:
            parser.error("--last and --since take non-negative numbers")
        if args.type and not args.follow:
            parser.error("--type types new segments as they come: use it with --follow")
    if args.command == "vocabulary" and (args.action == "list") == bool(args.words):
        parser.error("vocabulary add/remove take one or more WORDs; list takes none")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    _check_arguments(parser, args, unknown)
    if args.command == "monitor":
        from .monitor import run_monitor

        return run_monitor(args)
    if args.command in ("install", "uninstall"):
        from .install import run_install

        return run_install(args)
    if args.command == "devices":
        return _devices(args.json)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `listenctl transcript --follow | head`: the reader left
        sys.stderr.close()
        return EXIT_OK
    except (NotRunning, NoBusError) as e:
        print(f"listenctl: {e}", file=sys.stderr)
        return EXIT_FAIL
    except CallFailed as e:
        print(f"listenctl: {e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, InvalidArgs) else EXIT_FAIL
    except ValueError as e:
        print(f"listenctl: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
