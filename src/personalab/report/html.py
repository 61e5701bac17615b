"""Rendering a ``Report`` as one self-contained HTML file: inline CSS, pictures as base64 PNG
data URIs, no script and no external resource, so that it opens anywhere, offline, as is.

Every piece of text goes through ``html.escape`` (names in a plan are the user's, and may hold
``<``, ``&`` or quotes); the only markup is what this module writes itself.
"""

from __future__ import annotations

import base64
import html
import re

from personalab.report.document import (Bullets, Evidence, Figure, Inline, Paragraph, Report, Section, Table,
                                        Trail)

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d232b; font: 15px/1.55 system-ui, -apple-system, "Segoe UI",
       Roboto, "Noto Sans", "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 48px; background: #fff;
       border-left: 1px solid #e3e6ea; border-right: 1px solid #e3e6ea; }
h1 { font-size: 1.7rem; margin: 0 0 6px; line-height: 1.25; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e3e6ea; }
p { margin: 8px 0; }
code { font: 0.9em ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f0f2f5;
       padding: 1px 4px; border-radius: 3px; }
.description { color: #47515d; margin: 4px 0 10px; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 0; padding: 0; list-style: none;
        color: #47515d; font-size: 0.88rem; }
.meta b { color: #1d232b; font-weight: 600; }
nav.toc { margin: 14px 0 0; font-size: 0.88rem; }
nav.toc a { color: #1f5fa8; text-decoration: none; margin-right: 14px; }
.lead, .lead-accepted { font-size: 1.12rem; padding: 12px 16px; border-radius: 6px; background: #eef4fb;
                        border-left: 4px solid #1f5fa8; }
.lead-accepted { background: #edf7ee; border-left-color: #2e7d32; }
.note { color: #5b6570; font-size: 0.9rem; }
.warning { background: #fff6e0; border-left: 4px solid #e0a100; padding: 8px 12px; border-radius: 4px; }
ol.trail { padding-left: 0; list-style: none; counter-reset: step; }
ol.trail li { counter-increment: step; margin: 8px 0; padding: 8px 12px 8px 44px; position: relative;
              border: 1px solid #e3e6ea; border-radius: 6px; }
ol.trail li::before { content: counter(step); position: absolute; left: 12px; top: 9px; width: 22px;
                      text-align: center; color: #7a848f; font-variant-numeric: tabular-nums; }
ol.trail .branch { color: #5b6570; font-size: 0.9rem; }
ol.trail p { margin: 4px 0 0; }
.badge { display: inline-block; min-width: 5.5em; text-align: center; font-size: 0.78rem; font-weight: 600;
         padding: 1px 8px; border-radius: 10px; margin-right: 8px; background: #eceff1; color: #455a64;
         white-space: nowrap; }
.status-accepted { background: #dff1e1; color: #1b5e20; }
.status-rejected { background: #fde4e4; color: #a12121; }
.status-skipped { background: #fff1cc; color: #7a5600; }
.status-failed { background: #f6d0d0; color: #6b0f0f; outline: 1px solid #c62828; }
.status-baseline { background: #dde9f7; color: #174a85; }
.status-reference { background: #eeeeee; color: #444; }
.table-wrap { overflow-x: auto; margin: 12px 0; }
table { border-collapse: collapse; font-size: 0.86rem; width: 100%; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e3e6ea; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; vertical-align: bottom; }
td .badge { min-width: 0; margin-right: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tr.chosen td { background: #edf7ee; font-weight: 600; }
tr.baseline td { background: #f5f8fc; }
tr.reference td { color: #555; font-style: italic; }
figure { margin: 16px 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #e3e6ea; border-radius: 4px; }
figcaption { color: #47515d; font-size: 0.88rem; margin-top: 6px; max-width: 900px; }
ul { padding-left: 22px; }
footer { margin-top: 40px; color: #7a848f; font-size: 0.8rem; overflow-wrap: anywhere; }
"""


def to_html(report: Report) -> str:
    head = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(report.title)}</title>\n<style>{CSS}</style>\n</head>\n")
    body = [_header(report), *(_section(section) for section in report.sections),
            f"<footer>{_e(report.footer)}</footer>"]
    return head + "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"


def _header(report: Report) -> str:
    meta = "".join(f"<li>{_e(name)}: <b>{_e(value)}</b></li>" for name, value in report.meta)
    toc = "".join(f'<a href="#{_anchor(s.id)}">{_e(s.title)}</a>' for s in report.sections if s.blocks)
    description = f'<p class="description">{_e(report.description)}</p>' if report.description else ""
    return (f"<header>\n<h1>{_e(report.title)}</h1>\n{description}\n<ul class=\"meta\">{meta}</ul>\n"
            f'<nav class="toc">{toc}</nav>\n</header>')


def _section(section: Section) -> str:
    if not section.blocks:
        return ""
    blocks = "\n".join(_block(block) for block in section.blocks)
    return f'<section id="{_anchor(section.id)}">\n<h2>{_e(section.title)}</h2>\n{blocks}\n</section>'


def _block(block) -> str:
    if isinstance(block, Paragraph):
        return _paragraph(block)
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Trail):
        return '<ol class="trail">' + "".join(_evidence(item) for item in block.items) + "</ol>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    raise TypeError(f"no HTML for {type(block).__name__}")


def _paragraph(paragraph: Paragraph) -> str:
    attribute = f' class="{_e(paragraph.kind)}"' if paragraph.kind else ""
    return f"<p{attribute}>{_inline(paragraph.spans)}</p>"


def _evidence(item: Evidence) -> str:
    branch = f' <span class="branch">— {_e(item.branch)}</span>' if item.branch else ""
    return (f"<li>{badge(item.status)}<strong>{_e(item.label)}</strong>{branch}"
            f"<p>{_e(item.text)}</p></li>")


def _table(table: Table) -> str:
    def cell(tag: str, text: str, column: int) -> str:
        numeric = ' class="num"' if table.numeric[column] else ""
        content = badge(text) if tag == "td" and column == table.status_column else _e(text)
        if tag == "th":  # a header breaks between words, never inside macro-F1 or +/=/−
            content = content.replace("-", "\u2011").replace("/", "/\u2060")
        return f"<{tag}{numeric}>{content}</{tag}>"

    head = "<tr>" + "".join(cell("th", text, i) for i, text in enumerate(table.header)) + "</tr>"
    rows = []
    for index, row in enumerate(table.rows):
        kind = table.row_kinds[index] if index < len(table.row_kinds) else ""
        attribute = f' class="{_e(kind)}"' if kind else ""
        rows.append(f"<tr{attribute}>" + "".join(cell("td", text, i) for i, text in enumerate(row)) + "</tr>")
    return (f'<div class="table-wrap"><table>\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody>\n</table></div>")


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    caption = f"<figcaption>{_inline(figure.caption)}</figcaption>" if figure.caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.alt)}">{caption}</figure>'


def badge(status: str) -> str:
    """A status as a coloured pill: the first word picks the colour (``rejected, chosen``)."""
    first = re.split(r"[,(]", status, maxsplit=1)[0].strip()
    return f'<span class="badge status-{_anchor(first)}">{_e(status)}</span>'


def _inline(spans: Inline) -> str:
    parts = []
    for span in spans:
        text = _e(span.text)
        text = f"<code>{text}</code>" if span.code else text
        parts.append(f"<strong>{text}</strong>" if span.strong else text)
    return "".join(parts)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
