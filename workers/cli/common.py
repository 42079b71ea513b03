"""What every command shares: settings with CLI overrides, one-line errors,
progress bars, and the console."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

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


def _flags_without_a_type() -> None:
    """typer shows every option's type in ``--help``, ``<bool>`` for a flag too, which takes no
    value: show nothing there (a flag's help says what it does)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_without_a_type", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich.flags_without_a_type = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_type()


def settings() -> Settings:
    return get_settings()


def cell(value: object, limit: int | None = 200) -> str:
    """Any outside text (paths, names, scraped metadata, error messages) for a rich table
    cell or line: sanitised (one line, no control characters or escape sequences,
    capped) and with rich markup escaped, so ``[/]`` in a file name shows as written.
    For plain ``print`` output use ``workers.sanitize.sanitize`` (no markup to escape)."""
    return escape(sanitize(value, limit))


def id_column(header: str, values: Sequence[str], **kw) -> Column:
    """A table column of ids (job ids or their unique short form, video ids): never folded
    or cut at 80 columns, as wide as its longest id (the other columns fold instead)."""
    return Column(header, no_wrap=True, min_width=max([len(header), *(len(v) for v in values)]), **kw)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {cell(message, None)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {cell(message, None)}", highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int | None = None, enabled: bool = True) -> Iterator:
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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PhaseProgress:
    """Progress of a job in phases (features, validation, final fit ...) on stderr:
    rich bars with elapsed time and ETA on a terminal; elsewhere (a log, a pipe)
    one line at every tenth of a phase and at each change of its detail."""

    def __init__(self, phases: Sequence[tuple[str, int]], console: Console | None = None) -> None:
        self.console = console or err_console
        self.totals = {name: max(1, total) for name, total in phases}
        self.done = {name: 0 for name in self.totals}
        self.started: dict[str, float] = {}
        self.logged: dict[str, tuple[int, str]] = {}
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.tasks = {name: self.progress.add_task(name, total=total, start=False) for name, total in self.totals.items()}

    def __enter__(self) -> PhaseProgress:
        self.progress.__enter__()
        self._begin(next(iter(self.totals)))
        return self

    def _begin(self, phase: str) -> None:
        self.started[phase] = time.monotonic()
        self.progress.start_task(self.tasks[phase])

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance(self, phase: str, n: int = 1, detail: str | None = None) -> None:
        self.update(phase, self.done[phase] + n, detail)

    def update(self, phase: str, done: int, detail: str | None = None) -> None:
        if phase not in self.started:
            self._begin(phase)
        self.done[phase] = done = min(done, self.totals[phase])
        text = cell(f"{phase}: {detail}" if detail else phase, None)
        self.progress.update(self.tasks[phase], completed=done, description=text)
        if not self.live:
            self._log_line(phase, done, detail or "")
        if done == self.totals[phase]:  # phases run one after another: the next one starts now
            following = list(self.totals)[list(self.totals).index(phase) + 1 :]
            if following and following[0] not in self.started:
                self._begin(following[0])

    def _log_line(self, phase: str, done: int, detail: str) -> None:
        total = self.totals[phase]
        tenth = done * 10 // total
        if self.logged.get(phase) == (tenth, detail):
            return
        self.logged[phase] = (tenth, detail)
        elapsed = time.monotonic() - self.started[phase]
        eta = f", about {_duration(elapsed / done * (total - done))} left" if 0 < done < total else ""
        where = f" ({detail})" if detail else ""
        self.console.print(
            f"{phase}{where}: {done}/{total}, {_duration(elapsed)} elapsed{eta}", highlight=False, markup=False, soft_wrap=True
        )
