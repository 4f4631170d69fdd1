"""``listend``: the daemon entry point and the ``transcribe`` command.

Exit codes: 0 success, 1 runtime failure (already running, no bus, model
failed to load), 2 bad usage or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .cliutil import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UsageParser, setup_logging
from .config import ConfigError, load_settings
from .events import EngineEvent, Refined
from .models import ModelUnavailable
from .sources import FileSource, SourceError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-l",
        "--lightweight",
        action="store_true",
        help="the lightweight profile: one tiny.en model for live and final text (Whisper base where the "
        "languages set hold another than English), no refine pass, smaller queues (low memory and CPU)",
    )
    p.add_argument("--config", metavar="PATH", help="config file (default: $XDG_CONFIG_HOME/listend/config.toml)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="listend",
        description="Local, offline live dictation daemon.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"listend {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=UsageParser, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon on the D-Bus session bus (the default)")
    add_run_arguments(run)
    # `listend [OPTIONS]` is `listend run [OPTIONS]`: say so, and show those options (--start, --device, ...).
    options = run.format_help().split("\noptions:\n", 1)[-1]
    parser.epilog = "Without COMMAND, listend runs the daemon: listend [OPTIONS] is listend run [OPTIONS].\n\n" + (
        f"options of run:\n{options}"
    )

    tr = sub.add_parser(
        "transcribe",
        help="transcribe audio files in-process (no bus, no microphone)",
        description="Run the live+refine pipeline over files and print the final text.",
    )
    tr.add_argument("files", nargs="+", metavar="FILE", help="audio files (any format FFmpeg reads)")
    tr.add_argument("--json", action="store_true", help="one JSON object per segment and line")
    tr.add_argument("--realtime", action="store_true", help="pace input like a live microphone")
    _common(tr)
    return parser


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--device", metavar="NAME|INDEX", help="input device (default: the system default)")
    p.add_argument("--source", metavar="FILE", help="replay FILE (paced in real time) instead of the microphone")
    p.add_argument("--start", action="store_true", help="start listening at once (default: idle)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    if args.command == "transcribe":
        return transcribe(args)
    from .server import run_daemon

    return run_daemon(args)


def transcribe(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    try:
        settings, overrides = load_settings(args.config, "lightweight" if args.lightweight else None)
        sources = [FileSource(path, realtime=args.realtime) for path in args.files]
    except (ConfigError, SourceError) as e:
        return _fail(e, EXIT_USAGE)

    import tempfile

    from .engine import Engine
    from .unfinished import UnfinishedAudio

    # Audio a failed decode leaves behind belongs to this run, not to the daemon's next start.
    kept_dir = tempfile.TemporaryDirectory(prefix="listend-transcribe-")
    engine = Engine(settings, overrides, unfinished=UnfinishedAudio(Path(kept_dir.name)))
    current = {"file": ""}

    def on_event(event: EngineEvent) -> None:
        if not isinstance(event, Refined):
            return
        if args.json:
            record = {
                "id": event.id,
                "start": round(event.start, 3),
                "end": round(event.end, 3),
                "text": event.text,
                "live_text": event.live_text,
                "source": event.source,
            }
            if len(sources) > 1:
                record["file"] = current["file"]
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            if len(sources) > 1 and current["file"] != current.get("named"):
                current["named"] = current["file"]
                print(f"==> {current['file']} <==", flush=True)  # several files: say whose text follows
            print(event.text, flush=True)

    engine.subscribe(on_event)
    try:
        engine.load()
    except ModelUnavailable as e:
        return _fail(e, EXIT_FAIL)
    status = EXIT_OK
    try:
        for source in sources:
            current["file"] = source.path
            engine.start(source)
            engine.wait_source_done()
            engine.wait_drained(None)
            if engine.state == "error":
                status = _fail(engine.last_error, EXIT_FAIL)
                break
            if source.error:
                status = _fail(source.error, EXIT_USAGE)
            elif source.samples_delivered == 0:
                status = _fail(f"{source.path}: contains no audio", EXIT_USAGE)
            elif source.warning:
                print(f"listend: warning: {source.warning}", file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    finally:
        engine.close(None)
        kept_dir.cleanup()
    return status


def _fail(error: object, code: int) -> int:
    print(f"listend: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
