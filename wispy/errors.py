"""The base of every error wispy raises on purpose (compiler and runtime alike)."""


class WispyError(Exception):
    """Base of every error wispy raises on purpose."""
