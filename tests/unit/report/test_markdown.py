"""The Markdown summary: the same decision and strategy table as the HTML, pictures as files in
report_files/, and user text that cannot turn into markup."""

from __future__ import annotations

import html
import re

from personalab.report import REPORT_HTML, REPORT_MD, write_report
from personalab.report.markdown import escape


def markdown_table(text: str) -> list[list[str]]:
    """The first table of a Markdown text, cells unescaped, the alignment row left out."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not re.fullmatch(r"(\| ---:? )+\|", line)]
    rows = []
    headers = [i for i, line in enumerate(lines) if line.startswith(("| strategy", "| steps of"))]
    for line in lines[:headers[1]]:  # up to the next table's header
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([html.unescape(re.sub(r"\\(.)", r"\1", cell.strip())) for cell in cells])
    return rows


def html_table(page: str) -> list[list[str]]:
    table = page[page.index("<table>"):page.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).replace("\u2011", "-").replace("\u2060", "")
             for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)] for row in rows]


def test_the_markdown_has_the_same_table_as_the_html(rendered):
    markdown = (rendered / REPORT_MD).read_text()
    table = markdown_table(markdown)
    assert table == html_table((rendered / REPORT_HTML).read_text())
    assert len(table) == 1 + 1 + 5 + 1  # header, baseline, five candidates, one reference
    assert "| ---: |" in markdown  # numbers right-aligned


def test_the_markdown_has_the_decision_and_every_candidate(rendered):
    markdown = (rendered / REPORT_MD).read_text()
    assert ("> Chosen: **fleet** (per_persona) — branch: **one LoRA per persona** — picked on the val rows and "
            "confirmed on the test rows.") in markdown
    for number, name, status in [(1, "per_cluster", "rejected"), (2, "&lt;script>alert(1)&lt;/script> (weighted_merge)",
                                                                     "skipped"),
                                 (3, "fleet (per_persona)", "accepted"), (4, "ensemble", "not run"),
                                 (5, "broken (moe)", "failed")]:
        assert f"{number}. **{name}**" in markdown and f"— **{status}**:" in markdown


def test_pictures_are_files_beside_it(rendered):
    markdown = (rendered / REPORT_MD).read_text()
    linked = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+)\)", markdown)
    assert {"report_files/persona_gains.png", "report_files/training_curves.png",
            "report_files/step_times.png"} <= set(linked)
    assert all((rendered / path).read_bytes().startswith(b"\x89PNG") for path in linked)


def test_user_text_cannot_become_markup():
    assert escape("<script>alert(1)</script>") == "&lt;script>alert(1)&lt;/script>"
    assert escape("[x](http://example.com)") == "[x]\\(http://example.com)"
    assert escape("# not a heading") == "\\# not a heading"
    assert escape("a*b* `c`") == "a\\*b\\* \\`c\\`"
    assert escape("two\nlines") == "two lines"
    assert escape("&lt;") == "&amp;lt;"
    # What is no markup stays readable as plain text.
    assert escape("McNemar p = 0.18 >= alpha 0.05; gain < minimum") == "McNemar p = 0.18 >= alpha 0.05; gain < minimum"


def test_a_name_with_a_bar_keeps_the_table_whole(plan_dir, edit_plan, quick_plots):
    edit_plan(plan_dir, lambda plan: plan["candidates"][0].update(name="a|b"))
    write_report(plan_dir)
    row = next(line for line in (plan_dir / REPORT_MD).read_text().splitlines() if line.startswith("| a"))
    assert row.startswith("| a\\|b (per_cluster) |") and len(re.split(r"(?<!\\)\|", row)) == 12
