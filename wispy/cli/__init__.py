"""The `wispy` command (`wispy.cli.main`); one module per theme registers its commands."""


def main(argv=None) -> int:
    from wispy.cli.main import main as run

    return run(argv)
