"""Writing a plan's report into its folder: ``report.html`` (self-contained),
``report.md`` and the pictures the Markdown shows (``report_files/*.png``).

Every file goes through ``personalab.data.atomic`` (a temporary name renamed into place), so a reader
(or a browser left open on the report) sees the old report or the new one, never a part. The
pictures are written before the Markdown that points at them; pictures of an earlier report
that this one no longer has are removed last.
"""

from __future__ import annotations

from pathlib import Path

from personalab.data.atomic import atomic_write_bytes, atomic_write_text
from personalab.report.build import build_report
from personalab.report.folder import open_plan_folder
from personalab.report.html import to_html
from personalab.report.markdown import to_markdown

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
FILES = "report_files"


def write_report(out: str | Path) -> list[Path]:
    """Render the report of the plan folder ``out``; returns ``[report.html, report.md]``.
    Raises ``PersonalabError`` when ``out`` is not a plan folder."""
    out = Path(out)
    report = build_report(open_plan_folder(out))
    pictures = {f"{figure.name}.png": figure.png for figure in report.figures}
    for name, png in pictures.items():
        atomic_write_bytes(out / FILES / name, png)
    atomic_write_text(out / REPORT_HTML, to_html(report))
    atomic_write_text(out / REPORT_MD, to_markdown(report, FILES))
    _remove_stale(out / FILES, set(pictures))
    return [out / REPORT_HTML, out / REPORT_MD]


def _remove_stale(folder: Path, keep: set[str]) -> None:
    for path in folder.glob("*.png") if folder.is_dir() else []:
        if path.name not in keep:
            path.unlink(missing_ok=True)
