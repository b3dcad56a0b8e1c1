"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import sys
from typing import Callable

import click


class SbsError(Exception):
    """A problem the user can fix (bad input, missing model, existing output...)."""


class BatchStop(SbsError):
    """A problem every remaining file would hit too (a model that cannot load): stop the batch."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-line reports."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def run_command(action: Callable[[], int | None], on_refusal: Callable[[str], None] | None = None) -> None:
    """Run a command's body and exit with its status; an SbsError becomes one "error: ..." line
    (also passed to `on_refusal`, e.g. for a --json summary) and status 1, an interrupt a note and
    status 130 (shared by every sbsconvert command)."""
    try:
        code = action()
    except SbsError as error:
        click.echo(f"error: {error}", err=True)
        if on_refusal is not None:
            on_refusal(str(error))
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted: finished outputs are complete, unfinished ones were not written", err=True)
        sys.exit(130)
    sys.exit(code or 0)
