"""The error raised when data settings select nothing a run can train on."""


class DataSetupError(ValueError):
    """The data settings and the archive do not give a usable training set: no image matches,
    fewer patches than one batch, patches that cannot be stacked. The message names the
    manifest or setting and what to change; commands print it without a traceback."""
