"""The one exception type that means "the user gave us something wrong"."""


class NmtError(Exception):
    """A user mistake (bad recipe, bad file, missing model).

    The CLI prints its message as one line and exits with status 2; it never
    shows a traceback for it. The message says what is wrong and where
    (file, line, key).
    """


class StopRequested(Exception):
    """Training was asked to stop (SIGINT or SIGTERM) and saved last.pt first.

    `signal` is the signal's name; the CLI exits with 130 (SIGINT) or 143 (SIGTERM).
    """

    def __init__(self, signal: str, checkpoint: str = ""):
        super().__init__(signal)
        self.signal, self.checkpoint = signal, checkpoint
