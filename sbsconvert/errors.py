"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class SbsError(Exception):
    """A problem the user can fix (bad input, missing model, existing output...)."""


class BatchStop(SbsError):
    """A problem every remaining file would hit too (a model that cannot load): stop the batch."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-line reports."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
