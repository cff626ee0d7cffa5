"""The one exception type that means "the user gave us something wrong"."""


class NmtError(Exception):
    """A user mistake (bad recipe, bad file, missing model).

    The CLI prints its message as one line and exits with status 2; it never
    shows a traceback for it. The message says what is wrong and where
    (file, line, key).
    """
