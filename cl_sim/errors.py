"""One error type for every bad input: the CLI prints its message on one line and exits 2."""


class CLSimError(Exception):
    """A problem with the user's input (config, data, ordering, store) that names its cause."""


class ConfigError(CLSimError):
    """A config key, type or value is wrong."""


class DataError(CLSimError):
    """A data file, column, split or label is missing or inconsistent."""


class StoreError(CLSimError):
    """The adapter store is corrupt or holds a state that does not match."""
