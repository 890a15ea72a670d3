"""`python -m wispy`: the `wispy` command."""
from wispy.cli.main import main

raise SystemExit(main())
