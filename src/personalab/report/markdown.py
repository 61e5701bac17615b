"""Rendering a ``Report`` as Markdown: the same decision, evidence and table as the HTML, with
pictures referenced as files in a folder beside it (``report_files/<name>.png``), which the
writer saves.

Text is escaped for Markdown readers that pass HTML through, and only where Markdown would
read it as markup, so that the file stays readable as plain text: ``<`` starting a tag (a
strategy named ``<script>`` stays text) and ``&`` starting an entity become entities; ``*``,
backticks, a link's ``](`` and ``|`` in table cells are backslash-escaped. ``p >= 0.05`` and
``gain < minimum`` stay as they are.
"""

from __future__ import annotations

import re

from personalab.report.document import Bullets, Figure, Inline, Paragraph, Report, Section, Table, Trail


def to_markdown(report: Report, files: str) -> str:
    """``files``: the folder of the pictures, relative to the Markdown file."""
    lines = [f"# {escape(report.title)}", ""]
    if report.description:
        lines += [escape(report.description), ""]
    lines += [" · ".join(f"{escape(name)}: **{escape(value)}**" for name, value in report.meta), ""]
    for section in report.sections:
        lines += _section(section, files)
    if report.footer:
        lines += ["---", "", f"_{escape(report.footer)}_", ""]
    return "\n".join(lines).rstrip() + "\n"


def table_lines(table: Table) -> list[str]:
    """The table as GitHub-flavoured Markdown, numbers right-aligned."""
    rule = "|" + "|".join(" ---: " if numeric else " --- " for numeric in table.numeric) + "|"
    return [_row(table.header), rule, *(_row(row) for row in table.rows)]


def escape(text: str) -> str:
    text = " ".join(str(text).splitlines()).replace("\\", "\\\\")  # one line: a newline would end a table row
    text = re.sub(r"^([#>])", r"\\\1", text)  # not a heading or a quote
    text = re.sub(r"&(?=#?\w+;)", "&amp;", text)  # "&lt;" written in a name shows as those four characters
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)  # a tag, a comment, an autolink
    return text.replace("*", "\\*").replace("`", "\\`").replace("](", "]\\(")


def _section(section: Section, files: str) -> list[str]:
    if not section.blocks:
        return []
    lines = [f"## {escape(section.title)}", ""]
    for block in section.blocks:
        lines += _block(block, files) + [""]
    return lines


def _block(block, files: str) -> list[str]:
    if isinstance(block, Paragraph):
        text = _inline(block.spans)
        return [f"> {text}" if block.kind in ("lead", "lead-accepted", "warning") else text]
    if isinstance(block, Bullets):
        return [f"- {_inline(item)}" for item in block.items]
    if isinstance(block, Trail):
        return [f"{i}. **{escape(e.label)}**" + (f" ({escape(e.branch)})" if e.branch else "")
                + f" — **{escape(e.status)}**: {escape(e.text)}" for i, e in enumerate(block.items, 1)]
    if isinstance(block, Table):
        return table_lines(block)
    if isinstance(block, Figure):
        caption = [_inline(block.caption)] if block.caption else []
        return [f"![{escape(block.alt)}]({files}/{block.name}.png)", "", *caption]
    raise TypeError(f"no Markdown for {type(block).__name__}")


def _inline(spans: Inline) -> str:
    parts = []
    for span in spans:
        text = f"`{span.text.replace('`', '')}`" if span.code else escape(span.text)
        parts.append(f"**{text}**" if span.strong and text.strip() else text)
    return "".join(parts)


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(escape(cell).replace("|", "\\|") for cell in cells) + " |"
