"""Reading the files a user hands over: bounded, decoded and parsed the one safe way.

Every file the project reads from a user (config, recipe, registry.yaml, local settings, CSV lists,
classes.txt, imported .npz) passes here first, so no such read can hang or exhaust memory:
- it must be a regular file: a FIFO would block a read forever, `/dev/zero` would never end;
- text has a size cap checked before reading (a recipe is kilobytes, not 200 MB);
- text is UTF-8 (a BOM is dropped), or one line says which byte is not;
- YAML is read by the safe loader with aliases refused: 437 bytes of nested aliases
  (a "billion laughs") expand to gigabytes as soon as anything walks the result;
- an .npz declares every array's shape in its header: each is checked against what the caller
  expects, and each zip member's size against its header, before any array is read.
"""
from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.errors import UserError, one_line

MiB = 1 << 20
MAX_TEXT_BYTES = 64 * MiB  # any text file the project reads; callers pass tighter caps where they know better


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """`path` if it is an existing regular file (after links); else one line saying what it is instead."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise UserError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what} {path} is not a regular file (a FIFO, device or socket); give a file")
    return path


def read_bytes(path: str | os.PathLike, what: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The whole file, refused before reading when it is larger than `limit` (or grows past it while read)."""
    path = regular_file(path, what)
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{what} {path} is {size / MiB:.1f} MiB; at most {limit / MiB:g} MiB is read")
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        raise UserError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if len(data) > limit:
        raise UserError(f"{what} {path} is larger than {limit / MiB:g} MiB")
    return data


def decode(data: bytes, path: str | os.PathLike, what: str) -> str:
    """UTF-8 text (a leading BOM, as some editors write, is dropped), or one line naming the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise UserError(f"{what} {path} is not UTF-8 text (byte {err.start}, line {line}); save it as UTF-8") from None


def read_text(path: str | os.PathLike, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    return decode(read_bytes(path, what, limit), path, what)


class YamlAliasError(yaml.composer.ComposerError):
    """An alias (`*name`) in YAML text: refused wherever the text came from."""


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader (no python tags, no objects) that also refuses aliases (`*name`)."""

    def compose_node(self, parent, index):  # noqa: ANN001  (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise YamlAliasError(None, None, "aliases (*name) are not allowed", mark)
        return super().compose_node(parent, index)


def load_yaml_text(text: str) -> Any:
    """The one YAML parser for user text: safe, and aliases refused (YamlAliasError); other
    problems raise yaml.YAMLError, for callers that treat unparsable text as a plain string."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506  (a SafeLoader subclass)


def parse_yaml(text: str, path: str | os.PathLike, what: str) -> Any:
    """Parse YAML text; a syntax error, a tag or an alias is one line with its line number, no caret lines."""
    try:
        return load_yaml_text(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or err.__class__.__name__
        raise UserError(one_line(f"{what} {path} is not valid YAML{where}: {problem}")) from None


def read_yaml(path: str | os.PathLike, what: str, limit: int = MAX_TEXT_BYTES) -> Any:
    return parse_yaml(read_text(path, what, limit), path, what)


# --- .npz archives: shapes and sizes checked before any array is read -----------------------------

def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:  # noqa: ANN001  (a binary file object)
    version = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = reader(fh)
    return tuple(shape), dtype


def check_npz(path: str | os.PathLike, what: str, max_bytes: int) -> Path:
    """Refuse an .npz whose arrays would take more than `max_bytes` each, by their headers and zip sizes.

    numpy allocates what a header declares before reading, and inflates what a zip member holds: a 1 MB
    file can claim 373 GiB or inflate to gigabytes. Both are read from the archive's directory and each
    member's first bytes, so a hostile file costs a few kilobytes to refuse.
    """
    path = regular_file(path, what)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as fh:
                    shape, dtype = _npy_header(fh)
                declared = math.prod(shape) * dtype.itemsize
                if declared > max_bytes or info.file_size > declared + 64 * 1024:
                    raise UserError(f"{what} {path}: array '{info.filename}' declares shape {shape} of {dtype} "
                                    f"({max(declared, info.file_size) / MiB:.1f} MiB), more than the expected "
                                    f"rows × classes allow ({max_bytes / MiB:.1f} MiB)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, KeyError) as err:
        raise UserError(one_line(f"{what} {path} is not a readable .npz file ({err.__class__.__name__}: {err})")) \
            from None
    return path


def npz_budget(rows: int, classes: int) -> int:
    """Bytes one array of a prediction file may take: rows × classes float64, or rows ids of 1024 chars."""
    return max(rows, 1) * max(classes, 1) * 8 + max(rows, classes, 1) * 4 * 1024 + MiB


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a repeated object out again instead of as an alias: every YAML the project writes (recipes,
    run configs) must read back through `read_yaml`, which refuses aliases."""

    def ignore_aliases(self, data) -> bool:  # noqa: ANN001  (PyYAML's signature)
        return True


def dump_yaml(data: Any, **options: Any) -> str:
    """yaml.safe_dump without aliases (see _NoAliasDumper)."""
    return yaml.dump(data, Dumper=_NoAliasDumper, **options)
