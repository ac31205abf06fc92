"""The options several commands share (Typer ``Annotated`` types), so each command's signature stays short."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec field: key.path=value (repeatable), validated like the file."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Run directory (default: OUTPUT_DIR/NAME/TIMESTAMP).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out, skipping what is finished.")]
LogEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--log-every",
        help="When stdout is not a terminal: a line every N epochs (0: per fold only). "
        "Default: a line per 10% of the work, naming the finished folds.",
    ),
]
ExecutorOpt = Annotated[str | None, typer.Option("--executor", help="local or ray (overrides runtime.executor).")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="Ray cluster address to join (ray start --head).")]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failure.")]


def runtime_sets(executor: str | None, address: str | None) -> list[str]:
    """``--executor`` and ``--address`` as ``--set`` overrides of ``runtime``."""
    extra = []
    if executor:
        extra.append(f"runtime.executor={executor}")
    if address:
        extra.append(f"runtime.address={address}")
    return extra
