"""User-facing errors: raised for bad input, printed as one paragraph by the CLI, exit status 2."""


class ClipforgeError(Exception):
    """Bad input or an unmet precondition the user can fix; never a bug. The CLI prints it and exits 2."""

    exit_code = 2


class NotImplementedYet(ClipforgeError):
    """A command that exists in the CLI surface but whose issue has not landed yet."""
