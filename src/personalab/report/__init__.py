"""The report of a plan, for people: one self-contained HTML file (inline CSS, pictures as data
URIs, no script) and a Markdown summary with its pictures in ``report_files/``, both rebuilt
from the plan folder alone (``plan.json``, ``compare/``, ``runs/*/training.json``, the ledger).

    write_report(RUN_DIR)  ->  RUN_DIR/report.html, RUN_DIR/report.md, RUN_DIR/report_files/

Modules: ``folder`` reads the plan folder; ``story`` puts the decision and each candidate's
evidence in words; ``table`` builds the strategy table (one ``document.Table`` per split) from
the plan record; ``plots`` draws with matplotlib (Agg); ``pictures`` and ``build`` assemble the
sections of a ``document.Report``; ``html`` and ``markdown`` render it; ``text`` renders the
strategy tables for the terminal (``personalab plan``); ``write`` writes the files atomically.
"""

from personalab.report.build import build_report
from personalab.report.document import Report
from personalab.report.folder import PlanFolder, open_plan_folder
from personalab.report.html import to_html
from personalab.report.markdown import to_markdown
from personalab.report.text import format_tables
from personalab.report.write import FILES, REPORT_HTML, REPORT_MD, write_report

__all__ = ["FILES", "REPORT_HTML", "REPORT_MD", "PlanFolder", "Report", "build_report", "format_tables",
           "open_plan_folder", "to_html", "to_markdown", "write_report"]
