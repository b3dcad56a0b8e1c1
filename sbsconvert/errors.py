"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import re
import sys
from typing import Callable, Mapping

import click

# A setting named in a message: `divergence`, `spsmd=False` (see SbsError).
_SETTING = re.compile(r"`([a-z][a-z0-9_]*(?:=[A-Za-z0-9_.]+)?)`")
_spelling: Callable[[str], str] | None = None  # how the running command names settings (see run_command)


class SbsError(Exception):
    """A problem the user can fix (bad input, missing model, existing output...).

    Messages say what is wrong in the domain's words and name the setting to change between
    backquotes, as the Python API spells it (`force`, `spsmd=False`); while a command runs
    (run_command with `spelling`), str() names them as that command's options (--force, --no-spsmd)."""

    def __str__(self) -> str:
        message = super().__str__()
        if _spelling is None:
            return message
        return _SETTING.sub(lambda match: _spelling(match.group(1)), message)  # type: ignore[misc]


def option_spelling(options: Mapping[str, str]) -> Callable[[str], str]:
    """Names settings as command-line options: `options` where the option is not --NAME-WITH-DASHES."""
    return lambda setting: options.get(setting, "--" + setting.replace("_", "-"))


class BatchStop(SbsError):
    """A problem every remaining file would hit too (a model that cannot load): stop the batch."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-line reports."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def run_command(action: Callable[[], int | None], on_refusal: Callable[[str], None] | None = None,
                spelling: Callable[[str], str] | None = None) -> None:
    """Run a command's body and exit with its status; an SbsError becomes one "error: ..." line
    (also passed to `on_refusal`, e.g. for a --json summary) and status 1, an interrupt a note and
    status 130 (shared by every sbsconvert command). While it runs, errors name settings with
    `spelling` (see option_spelling), wherever they are printed."""
    global _spelling
    previous, _spelling = _spelling, spelling
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
    finally:
        _spelling = previous
    sys.exit(code or 0)
