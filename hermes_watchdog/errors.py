"""The one exception type that the CLI turns into a single line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input or an environment problem the user can fix; never shown with a traceback."""
