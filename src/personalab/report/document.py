"""The report as a small document model — sections of paragraphs, lists, tables and figures —
built once from a plan folder and rendered twice (HTML and Markdown), so that both say the
same thing by construction. It holds plain text only: escaping is each renderer's job."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A run of text; ``strong`` and ``code`` are the only inline styles a report needs."""

    text: str
    strong: bool = False
    code: bool = False


Inline = tuple[Span, ...]


def inline(*parts: str | Span) -> Inline:
    """``inline("kept ", strong("unified"), ".")``: strings become plain spans."""
    return tuple(part if isinstance(part, Span) else Span(str(part)) for part in parts)


def prose(text: str) -> Inline:
    """Plain words in which `backquoted` parts (commands, settings) become code spans."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backquote: keep the text as it is
        return (Span(str(text)),)
    return tuple(Span(part, code=bool(i % 2)) for i, part in enumerate(parts) if part)


def strong(text: str) -> Span:
    return Span(text, strong=True)


def code(text: str) -> Span:
    return Span(text, code=True)


@dataclass(frozen=True)
class Paragraph:
    spans: Inline
    kind: str = ""  # "" | "lead" / "lead-accepted" (the decision) | "note" (small print) | "warning"


@dataclass(frozen=True)
class Bullets:
    items: tuple[Inline, ...]


@dataclass(frozen=True)
class Evidence:
    """One candidate's outcome, in the order the plan tried them."""

    name: str
    label: str  # "name (strategy)"
    branch: str
    status: str  # accepted | rejected | skipped | not run | failed | not reached
    text: str  # why, in words


@dataclass(frozen=True)
class Trail:
    items: tuple[Evidence, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # per column: right-aligned, tabular figures
    row_kinds: tuple[str, ...] = ()  # per row: "" | "baseline" | "chosen"
    status_column: int | None = None  # cells drawn as status badges in HTML


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under report_files/ (safe characters only)
    png: bytes
    alt: str
    caption: Inline = ()


Block = Paragraph | Bullets | Trail | Table | Figure


@dataclass(frozen=True)
class Section:
    id: str  # anchor, [a-z0-9-]
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    meta: tuple[tuple[str, str], ...]  # (label, value) pairs under the title
    sections: tuple[Section, ...]
    description: str = ""  # the plan's own words, under the title
    footer: str = ""
    figures: tuple[Figure, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        found = tuple(b for s in self.sections for b in s.blocks if isinstance(b, Figure))
        object.__setattr__(self, "figures", found)
