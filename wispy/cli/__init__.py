"""The `wispy` command."""
from wispy.cli.main import main  # noqa: F401
