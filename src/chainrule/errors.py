"""The exceptions chainrule raises for problems a user can fix.

Every message is one sentence that says what is wrong and what to do about it; the CLI prints it
as ``error: <message>`` and exits non-zero without a traceback. Anything that is not a
``ChainruleError`` is a bug in chainrule.
"""

from __future__ import annotations


class ChainruleError(Exception):
    """Base class: a problem with the user's input, files or options."""

    exit_code = 2


class ConfigError(ChainruleError):
    """Invalid options or configuration; may carry several problems reported at once."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} configuration problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)


class DataError(ChainruleError):
    """A corpus or data file that cannot be used (missing, empty, binary, bad encoding)."""


class TokenizerError(ChainruleError):
    """A tokenizer that cannot be trained, loaded or applied as asked."""


class ModelFormatError(ChainruleError):
    """A model directory or checkpoint that is missing, corrupt, foreign or of another family."""


class TrainingError(ChainruleError):
    """Training cannot go on (for example the loss became NaN)."""
