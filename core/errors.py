"""Errors that mean "the user asked for something we cannot do": one line, exit code 2."""


class UserError(Exception):
    """Bad input or arguments. The message is a single line naming the value and what to do."""
