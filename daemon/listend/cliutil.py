"""What every listend command line shares: exit codes, one-line usage errors, logging."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def setup_logging(verbosity: int, default: int = logging.WARNING) -> None:
    level = max(logging.DEBUG, default - 10 * verbosity)
    logging.basicConfig(level=level, stream=sys.stderr, format="listend: %(levelname)s %(name)s: %(message)s")
    # faster-whisper logs every decode at INFO: one line per partial is noise.
    logging.getLogger("faster_whisper").setLevel(max(level, logging.WARNING))
