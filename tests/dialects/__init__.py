"""Tests of wispy.dialects (a package: its module names repeat those of tests/compress and tests/passes)."""
