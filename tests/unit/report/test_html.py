"""The HTML report: one self-contained file (no external resource, no script, pictures inside),
the decision and every candidate with its status, and user text escaped."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from personalab.report import REPORT_HTML

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each table's cells."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def page(rendered) -> str:
    return (rendered / REPORT_HTML).read_text(encoding="utf-8")


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def test_it_is_self_contained(page):
    tags = parse(page)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert all(a["href"].startswith("#") for tag, a in tags.tags if tag == "a")  # only links within the page
    assert not [tag for tag, _ in tags.tags if tag in ("script", "link", "iframe", "object", "embed")]
    assert "url(" not in page and "@import" not in page
    images = [a["src"] for tag, a in tags.tags if tag == "img"]
    assert len(images) >= 4  # gains, clusters, training curves, wall times
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)


def test_the_confirmation_and_the_test_table_are_there(page):
    confirmation = page[page.index('id="confirmation"'):page.index('id="strategies"')]
    assert "<strong>fleet</strong> (picked on the val rows) against <strong>unified</strong>" in confirmation
    assert "persona-level p = 0.0010" in confirmation and "<strong>confirmed</strong>" in confirmation
    assert "harm check: ok (p 0.4000)" in confirmation
    test_table = parse(page[page.index('id="test"'):]).tables[0]
    by_name = {row[0]: row for row in test_table[1:]}
    assert by_name["fleet (per_persona)"][7] == "ok (p 0.4000)"  # the harm check on the test rows
    assert "Not used for the decision" in page


def test_it_says_the_decision_and_why(page):
    assert "Chosen: <strong>fleet</strong> (per_persona)" in page
    assert "branch: <strong>one LoRA per persona</strong>" in page
    assert "picked on the val rows and confirmed on the test rows" in page
    assert "fleet was picked on the val rows (the first accepted, in cost order)" in page
    assert "One confirmatory test on the test rows held" in page
    assert "logistic regression on text embeddings + persona id" in page and "fleet beats it" in page


def test_every_candidate_appears_with_its_status(page):
    trail = page[page.index('<ol class="trail">'):page.index("</ol>")]
    items = trail.split("<li>")[1:]
    expected = [("per_cluster", "rejected", "gain -2.00 pts &lt; minimum +0.00 pts"),
                ("&lt;script&gt;", "skipped", "Skipped by its gate: silhouette 0.022 &lt; 0.1"),
                ("fleet", "accepted", "Every condition held on the val rows: persona-level p = 0.001 &lt; alpha 0.05"),
                ("ensemble", "not run", "fleet was accepted first"),
                ("broken", "failed", "too few personas to cluster")]
    assert len(items) == len(expected)  # in the order tried
    for item, (name, status, why) in zip(items, expected):
        assert name in item and f">{status}</span>" in item and why in item


def test_the_strategy_table_has_a_row_per_strategy(page):
    table = parse(page).tables[0]
    assert table[0][:4] == ["strategy", "accuracy", "macro\u2011F1", "Δ (pts)"]
    by_name = {row[0]: row for row in table[1:]}
    assert by_name["unified"][-1] == "baseline"
    assert by_name["fleet (per_persona)"][1:] == ["65.00%", "0.5000", "+5.00", "[+2.00, +8.00]", "0.0010", "8/2/2",
                                                  "–", "10.0 s", "accepted, chosen"]
    reference = by_name["logistic regression on text embeddings + persona id"]
    assert reference[1] == "62.00%" and reference[-1] == "reference (no adapter)"
    assert by_name["per_cluster"][3] == "-2.00" and by_name["per_cluster"][-1] == "rejected"
    assert by_name["broken (moe)"][1] == "–" and by_name["broken (moe)"][-1] == "failed"
    assert by_name["<script>alert(1)</script> (weighted_merge)"][-1] == "skipped"


def test_numbers_are_right_aligned(page):
    row = page[page.index("<tbody>"):].split("</tr>")[0]
    cells = re.findall(r"<td([^>]*)>", row)
    assert cells[0] == "" and all(c == ' class="num"' for c in cells[1:7] + cells[8:9])
    assert cells[7] == "" and cells[9] == ""  # the harm check and the status are words


def test_user_text_is_escaped(page):
    assert "<script>" not in page and "<b>merge</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "weighted &lt;b&gt;merge&lt;/b&gt; &amp; co" in page
    assert "A fake plan &amp; its &lt;tree&gt;." in page


def test_the_pictures_say_what_they_show(page):
    assert "fleet is the chosen strategy" in page
    assert "8 better, 2 equal, 2 worse" in page and "the 2 personas that were worse on the validation rows" in page
    assert "silhouette <strong>0.022</strong>" in page
    assert "fails the gate min_silhouette 0.1; skipped by it: &lt;script&gt;" in page
    assert "per_cluster</strong> reused, not retrained: unified" in page
    assert "train failed" in page  # the failed step in the wall-times table
