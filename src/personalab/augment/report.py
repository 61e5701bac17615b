"""What one augmentation run did, per augmenter: rows produced, kept, dropped and why,
or why the augmenter was skipped. Counts add up: produced = kept + unchanged + empty +
duplicates + leaks, and the dataset grows by the sum of ``kept``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class AugmenterStats:
    name: str
    produced: int = 0
    """Augmented texts the augmenter returned."""
    kept: int = 0
    """Added to the train split."""
    unchanged: int = 0
    """Dropped: equal (after normalization) to the row they were made from."""
    empty: int = 0
    """Dropped: no text left."""
    duplicates: int = 0
    """Dropped: equal to another train input of the same persona, or to a kept augmented one."""
    leaks: int = 0
    """Dropped: equal to a val or test input (of any persona)."""
    skipped: str | None = None
    """Why the augmenter did not run at all (missing model or data), else None."""

    @property
    def dropped(self) -> int:
        return self.unchanged + self.empty + self.duplicates + self.leaks


@dataclass
class AugmentReport:
    seed: int
    copies: int
    train_rows: int
    """Train rows before augmentation (the rows augmented)."""
    rows_before: int
    """All rows (every split) before augmentation."""
    augmenters: dict[str, AugmenterStats] = field(default_factory=dict)

    @property
    def added(self) -> int:
        return sum(stats.kept for stats in self.augmenters.values())

    @property
    def rows_after(self) -> int:
        return self.rows_before + self.added

    @property
    def skipped(self) -> dict[str, str]:
        return {name: s.skipped for name, s in self.augmenters.items() if s.skipped is not None}

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "copies": self.copies,
            "train_rows": self.train_rows,
            "rows_before": self.rows_before,
            "rows_after": self.rows_after,
            "added": self.added,
            "augmenters": {name: asdict(stats) for name, stats in self.augmenters.items()},
        }

    def summary(self) -> str:
        """A few lines for a log or a report."""
        lines = [
            f"augmentation: {self.train_rows} train rows, {self.copies} copies each -> "
            f"{self.added} rows added (seed {self.seed})"
        ]
        for stats in self.augmenters.values():
            if stats.skipped is not None:
                lines.append(f"  {stats.name}: skipped: {stats.skipped}")
                continue
            lines.append(
                f"  {stats.name}: produced {stats.produced}, kept {stats.kept}, dropped "
                f"{stats.unchanged} unchanged, {stats.empty} empty, {stats.duplicates} "
                f"duplicates, {stats.leaks} val/test leaks"
            )
        return "\n".join(lines)
