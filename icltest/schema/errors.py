"""SpecError: every problem in a spec file, each pointing at file:line:col.

Users fix specs in an editor, so an error is only useful if it says where (a location the
editor can jump to), which key, what was expected, and what they probably meant.
"""
from __future__ import annotations

from dataclasses import dataclass

from icltest.errors import SpecFileError


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec file.

    Attributes:
        where: ``file:line:col`` (1-based, as editors and compilers print them).
        key: the dotted path of the offending key, e.g. ``claims[0].expect``.
        message: what is wrong and what was expected (with "did you mean" when there is a guess).
    """

    where: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}" if self.key else f"{self.where}: {self.message}"


class SpecError(SpecFileError):
    """A spec file is not valid; carries every problem found, in file order."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, where: str, key: str, message: str) -> "SpecError":
        return cls([SpecProblem(where, key, message)])
