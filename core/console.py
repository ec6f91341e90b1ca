"""Log lines for people at a terminal: the message alone, on stderr (stdout carries results)."""
from __future__ import annotations

import logging
import sys


def console_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
