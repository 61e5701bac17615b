"""The plan's report hook: ``write_report(out)`` is what the runner calls at the end of a plan
(and ``personalab report`` any time). The report itself — ``report.html`` (self-contained),
``report.md`` and ``report_files/`` — is ``personalab.report``, rebuilt from the plan folder.
"""

from __future__ import annotations

from pathlib import Path

REPORT_HTML = "report.html"
REPORT_MD = "report.md"


def write_report(out: str | Path) -> list[Path]:
    """Write the report files of the plan in ``out``; returns their paths (HTML, Markdown)."""
    # Imported here: personalab.report reads the plan's modules, and comes after them.
    from personalab.report import write_report as render

    return render(out)
