"""What verification finds wrong with a synced variant: one `FileProblem` per file that is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileProblem:
    """One file that is wrong, and how."""

    path: str
    problem: str
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.expected or self.actual:
            text += f" (expected {self.expected or '-'}, actual {self.actual or '-'})"
        return text
