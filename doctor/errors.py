"""The one exception type for errors the user can fix (exit 2).

Everything the user controls and can get wrong raises ``UserError``: flags (``usage=True``: the
command line itself is wrong, so the usage line is shown), the configuration file and its
suppressions, the kubeconfig, the snapshot, the output paths, nothing reachable with the given
target. The command line maps it to exit 2 with one message on stderr; nothing else in the project
decides an exit code for bad input. ``path`` and ``line`` name where in a file the problem is, when
there is one (the message then starts with ``path:line:``).
"""
from __future__ import annotations

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input the user can fix: one message, exit 2, never a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 usage: bool = False) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.usage = usage
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"
