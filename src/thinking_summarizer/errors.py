"""Errors whose message alone tells the user what to fix: a setting, a source file, a server's refusal. The
command line (`cli.py`) shows such a message without a traceback; `kedro run --verbose` shows the traceback too."""


class UserFacingError(Exception):
    """Raised for what the user can fix; the message names the file, record, field or setting."""


class ConfigurationError(UserFacingError, ValueError):
    """A parameter or environment that no run can start with."""


class PreflightError(UserFacingError, RuntimeError):
    """A model, package or GPU the selected nodes need and this machine does not have."""


class ServerUnreachableError(UserFacingError, RuntimeError):
    """A server that answered none of a stage's requests; nothing was cached, so a rerun asks again."""
