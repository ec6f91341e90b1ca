"""User-facing errors and the one place that turns them into a clean exit."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable

# Every script exits with one of these: success, "checked and found problems", usage or input error.
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UserError(Exception):
    """A mistake the user can fix; shown as one line, never as a traceback (exit 2)."""


class ProblemsFound(UserError):
    """A check ran to the end and found problems (listed above the line); exit 1, not a usage error."""


def one_line(message: str) -> str:
    """Join a message that spans lines (e.g. one quoting a library's error) into the promised single line."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _printable_console() -> None:
    """Under a non-UTF-8 locale (LC_ALL=C, PYTHONUTF8=0) stdout is ASCII: a class name such as 'café' would
    end the script with a UnicodeEncodeError. Print such characters as escapes instead (files are always
    written as UTF-8; only the console is affected)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower().replace("-", "") != "utf8":
            stream.reconfigure(errors="backslashreplace")


def cli_entry(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a script's main so a UserError prints one line and exits 2 (ProblemsFound: 1).

    `--debug` anywhere on the command line lets the traceback through, because
    the people who hit a real bug need it and everyone else does not.
    """

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        _printable_console()
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        if debug:
            args.remove("--debug")
        try:
            return int(main(args) or 0)
        except UserError as err:
            if debug:
                raise
            print(f"error: {one_line(str(err))}", file=sys.stderr)
            return EXIT_PROBLEMS if isinstance(err, ProblemsFound) else EXIT_USAGE
        except KeyboardInterrupt:
            if debug:
                raise
            print("interrupted", file=sys.stderr)
            return 130

    return run
