"""The one error type every reader raises for input it cannot use."""


class ImageReadError(ValueError):
    """An image file or series that cannot be read, with the file and the reason.

    Raised for unreadable, truncated or inconsistent input so that callers (the
    archive scan, datasets) can count and report it instead of crashing deep
    inside a decoder.
    """

    def __init__(self, path, reason: str | None = None):
        if reason is None:
            # one message: how torch re-raises an error from a DataLoader worker process
            self.path, self.reason = "", str(path)
            super().__init__(str(path))
            return
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
