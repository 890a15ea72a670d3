"""Benchmarks: wispy timed side by side with its peers in one run (`wispy bench`)."""
