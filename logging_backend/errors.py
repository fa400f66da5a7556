"""The exception hierarchy of stagelog: one base class, one subclass per kind of failure."""


class StagelogError(Exception):
    """Base class of every error stagelog raises on purpose."""


class ConfigError(StagelogError):
    """Raised when a setting (argument or STAGELOG_* variable) cannot be parsed."""


class LauncherError(StagelogError):
    """Raised when the stack cannot be started, found or stopped."""


class StoreError(StagelogError):
    """Raised when ClickHouse cannot be reached or rejects a statement."""


class StoreUnavailable(StoreError):
    """Raised when the store failed transiently (down, overloaded, timeout): retry later."""


class SpoolError(StagelogError):
    """Raised when a spool segment cannot be written or read back."""


class BaselineError(StagelogError):
    """Raised when a drift baseline is malformed or does not match the feature layout."""


class InvalidInput(StagelogError):
    """Raised when a request's input cannot be served; it becomes that request's INVALID_ARG."""


class SpoolFull(SpoolError):
    """Raised when the collector cannot write its small state files yet (disk full): retry."""
