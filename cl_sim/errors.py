"""One error type for every bad input: the CLI prints its message on one line and exits 2."""


class CLSimError(Exception):
    """A problem with the user's input (config, data, ordering, store) that names its cause."""


class ConfigError(CLSimError):
    """A config key, type or value is wrong."""


class DataError(CLSimError):
    """A data file, column, split or label is missing or inconsistent."""


class StoreError(CLSimError):
    """The adapter store is corrupt or holds a state that does not match."""


class PhaseFailed(Exception):
    """A phase (or evaluation) failed where it ran, e.g. on a Ray worker: not bad input, so the CLI
    exits 1, with one line naming the phase, the cause and where the full log is."""
