"""Errors raised by wispy.runtime."""
from __future__ import annotations

from wispy.errors import WispyError


class WispyRuntimeError(WispyError, RuntimeError):
    """A module could not be loaded or run, or a tool it needs is missing.

    The message says what failed and, for a missing tool, what to install.
    """
