"""The one exception a user can cause: the CLI turns it into `error: ...` and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a file, option or spec. The message names it and says what to do."""
