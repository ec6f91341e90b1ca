"""report.html: one self-contained file (images as base64 data URIs, inline CSS, no scripts).

It opens offline, can be mailed or attached to an issue as one file, and reads
well at a laptop's width; wide tables scroll sideways instead of squeezing.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from report.page import Block, Code, CodePanels, Figure, FigureRow, Heading, Page, Table, Text, format_cell

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --accent: #2f6fb0; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: #243b53; color: #fff; padding: 1.4rem 0 1rem; }
header h1 { margin: 0 0 .4rem; font-size: 1.6rem; }
header ul { margin: 0; padding-left: 1.1rem; color: #d9e2ec; }
header nav { margin-top: .8rem; display: flex; flex-wrap: wrap; gap: .35rem .9rem; }
header code { background: rgba(255, 255, 255, .14); color: #fff; }
header nav a { color: #bcccdc; text-decoration: none; font-size: .9rem; }
header nav a:hover { color: #fff; text-decoration: underline; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 1.5rem; }
section { padding: 1.2rem 0 .6rem; border-bottom: 1px solid var(--line); }
h2 { font-size: 1.3rem; margin: 0 0 .8rem; color: #102a43; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .5rem; color: #334e68; }
p { margin: .4rem 0 .8rem; }
code { background: var(--soft); padding: .05rem .3rem; border-radius: 3px; font-size: .9em; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: .7rem .9rem;
      overflow-x: auto; font-size: .82rem; line-height: 1.35; }
.table { overflow-x: auto; margin: .4rem 0 1rem; }
table { border-collapse: collapse; font-size: .88rem; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { text-align: left; background: var(--soft); color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.kind-ensemble td { background: #eef6ff; }
tr.kind-baseline td { background: #fff8e6; }
tr.kind-submitted td { background: #eaf7ee; font-weight: 600; }
.caption { color: var(--muted); font-size: .85rem; margin-top: -.4rem; }
figure { margin: .4rem 0 1rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .85rem; }
.row { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
.row.wide { grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 0 1rem; }
.panel { min-width: 0; }
footer { color: var(--muted); font-size: .8rem; padding: 1rem 0 2rem; }
"""


def _inline(text: str) -> str:
    """Escape text, then turn `backticked` spans into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _table(block: Table) -> str:
    frame = block.frame
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    kinds = frame["kind"].astype(str).tolist() if "kind" in frame.columns else [""] * len(frame)
    for kind, values in zip(kinds, frame.itertuples(index=False)):
        cells = "".join(f'<td class="num">{html.escape(format_cell(v, block.digits))}</td>' if num
                        else f"<td>{html.escape(format_cell(v, block.digits))}</td>"
                        for v, num in zip(values, numeric))
        css = f' class="kind-{html.escape(kind)}"' if kind else ""
        rows.append(f"<tr{css}>{cells}</tr>")
    caption = f'<p class="caption">{_inline(block.caption)}</p>' if block.caption else ""
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{caption}'


def _figure(block: Figure) -> str:
    alt = html.escape(block.caption, quote=True)
    return (f'<figure><img src="{data_uri(block.path)}" alt="{alt}">'
            f"<figcaption>{_inline(block.caption)}</figcaption></figure>")


def _block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{_inline(block.text)}</h3>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Code):
        return f"<pre>{html.escape(block.text.rstrip())}</pre>"
    if isinstance(block, CodePanels):
        return '<div class="row wide">' + "".join(
            f'<div class="panel"><h3>{_inline(title)}</h3><pre>{html.escape(text.rstrip())}</pre></div>'
            for title, text in block.panels.items()) + "</div>"
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, FigureRow):
        return '<div class="row">' + "".join(_figure(f) for f in block.figures) + "</div>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def to_html(page: Page, footer: str = "") -> str:
    title = html.escape(page.title)
    summary = "".join(f"<li>{_inline(line)}</li>" for line in page.summary)
    nav = "".join(f'<a href="#{html.escape(s.id, quote=True)}">{html.escape(s.title)}</a>' for s in page.sections)
    sections = "".join(
        f'<section id="{html.escape(s.id, quote=True)}"><h2>{html.escape(s.title)}</h2>'
        + "".join(_block(b) for b in s.blocks) + "</section>"
        for s in page.sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{title}</h1><ul>{summary}</ul><nav>{nav}</nav></div></header>'
        f'<main class="wrap">{sections}</main>'
        f'<footer class="wrap">{_inline(footer)}</footer></body></html>\n'
    )
