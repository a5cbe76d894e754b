"""The one exception type for errors a user can cause (bad file, bad map, missing data, offline)."""


class HfusError(Exception):
    """A user-facing error: the message says what went wrong and what to do.

    The CLI prints it on one line and exits with ``exit_code`` (2 by default), without a traceback.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class HarnessError(HfusError):
    """An error of the harness itself raised during a method's call (e.g. a model pass outside any cost
    stage): it stops the run, while every other error a method raises, an ``HfusError`` of a helper it
    calls included, counts as that image's failure (PROTOCOL §3)."""
