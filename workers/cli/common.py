"""What every command shares: settings with CLI overrides, one-line errors,
progress bars, and the console."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from workers.sanitize import sanitize
from workers.settings import Settings, get_settings

console = Console()
err_console = Console(stderr=True)

# Keep TensorFlow's C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BackboneWeights = typer.Option(
    None, "--backbone-weights", help="VGG16 weights: 'imagenet', a local .weights.h5 path, or 'random'. \\[env: TT_VGG16_WEIGHTS]"
)
BackbonePreprocessing = typer.Option(
    None, "--backbone-preprocessing", help="Preprocessing of those weights: torch|caffe. \\[env: TT_VGG16_PREPROCESSING]"
)


def settings() -> Settings:
    return get_settings()


def cell(value: object, limit: int | None = 200) -> str:
    """Any outside text (paths, names, scraped metadata, error messages) for a rich table
    cell or line: sanitised (one line, no control characters or escape sequences,
    capped) and with rich markup escaped, so ``[/]`` in a file name shows as written.
    For plain ``print`` output use ``workers.sanitize.sanitize`` (no markup to escape)."""
    return escape(sanitize(value, limit))


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {cell(message, None)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {cell(message, None)}", highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: Optional[int] = None, enabled: bool = True) -> Iterator:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not enabled,
    )
    with progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        advance.progress = progress  # type: ignore[attr-defined]
        advance.task = task  # type: ignore[attr-defined]
        yield advance
