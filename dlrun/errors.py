"""The one exception tree of dlrun.

The core raises these and never prints or exits; ``dlrun.cli.app`` maps each class
to an exit code and one readable line.
"""

from __future__ import annotations


class DlrunError(Exception):
    """Base of every error dlrun raises on purpose.

    Attributes:
        exit_code: The process exit code the CLI uses for this error.
    """

    exit_code: int = 1


class InputError(DlrunError):
    """Bad input from the user: a spec, a file, a flag. Exit code 2."""

    exit_code = 2


class SpecError(InputError):
    """One or more problems in a spec, each with its dotted path.

    Args:
        problems: ``(path, message)`` pairs, e.g. ``("model.layers[2].Dense.units", "...")``.
        source: The file the spec came from, if any.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        n = len(problems)
        lines = [f"{n} problem{'s' if n != 1 else ''}{where}:"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class DataError(InputError):
    """A dataset cannot be found, read, verified or used as asked."""


class RunError(DlrunError):
    """Training or evaluation failed at run time (e.g. a NaN loss). Exit code 1."""


class LockError(InputError):
    """A run directory is held by another live process."""


class Interrupted(DlrunError):
    """A run was stopped by SIGINT or SIGTERM after saving its state. Exit code 130."""

    exit_code = 130


class CorruptFileError(InputError):
    """A file dlrun wrote fails its checksum, is truncated, or is in a format dlrun never loads.

    Args:
        path: The file.
        reason: What is wrong with it, one line.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
