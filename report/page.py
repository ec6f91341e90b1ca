"""The report as a small document (sections of text, tables, code and figures) and its Markdown form.

The report builder fills one `Page`; report.md and report.html are two renderings
of it, so the two can never tell different stories.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Text:
    text: str                      # plain text; `backticks` mark code


@dataclass
class Heading:
    text: str                      # a sub-heading inside a section


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""
    digits: int = 4


@dataclass
class Code:
    text: str                      # monospaced, e.g. a scikit-learn classification report


@dataclass
class CodePanels:
    panels: dict[str, str]         # title -> monospaced text, laid out side by side where wide enough


@dataclass
class Figure:
    path: Path                     # a PNG inside the report folder
    caption: str


@dataclass
class FigureRow:
    figures: list[Figure]          # shown side by side where the page is wide enough


Block = Text | Heading | Table | Code | CodePanels | Figure | FigureRow


@dataclass
class Section:
    id: str                        # the HTML anchor; tests and links rely on it
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Page:
    title: str
    summary: list[str]             # a few lines shown under the title
    sections: list[Section]


def format_cell(value, digits: int = 4) -> str:
    """One table cell as text: fixed decimals for floats, a dash for missing values."""
    if value is None or value is pd.NA:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "—" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def md_inline(text: object) -> str:
    """Data (class names, ids, member names) as literal Markdown text on one line: the one escaping helper.
    `<`/`&` become entities (raw `<img onerror=...>` would render), a pipe would end a table cell early and a
    newline would end the row, the heading or the caption it is in."""
    escaped = html.escape(str(text), quote=False).replace("|", "\\|")
    return " ".join(escaped.splitlines())


def md_fence(text: str) -> list[str]:
    """`text` in a code fence it cannot close: the fence is longer than any run of backticks inside
    (CommonMark), so a class name holding a newline and three backticks stays inside the block."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text.rstrip(), fence, ""]


def _md_cell(value, digits: int) -> str:
    return md_inline(format_cell(value, digits))


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    head = "| " + " | ".join(map(md_inline, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v, digits) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return [block.text, ""]
    if isinstance(block, Heading):
        return [f"### {md_inline(block.text)}", ""]
    if isinstance(block, Table):
        caption = [f"*{md_inline(block.caption)}*", ""] if block.caption else []
        return [markdown_table(block.frame, block.digits), "", *caption]
    if isinstance(block, Code):
        return md_fence(block.text)
    if isinstance(block, CodePanels):
        return [line for title, text in block.panels.items()
                for line in _markdown_block(Heading(title)) + _markdown_block(Code(text))]
    if isinstance(block, Figure):
        caption = md_inline(block.caption)
        return [f"![{caption}]({block.path.name})", "", f"*{caption}*", ""]
    if isinstance(block, FigureRow):
        return [line for figure in block.figures for line in _markdown_block(figure)]
    raise TypeError(f"unknown report block {type(block).__name__}")


def to_markdown(page: Page) -> str:
    """Markdown with images referenced by file name, for reading next to the PNGs."""
    lines = [f"# {page.title}", "", *[f"- {line}" for line in page.summary], ""]
    lines += ["Contents: " + " · ".join(f"[{s.title}](#{s.id})" for s in page.sections), ""]
    for section in page.sections:
        lines += [f'<a id="{section.id}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            lines += _markdown_block(block)
    return "\n".join(lines).rstrip() + "\n"
