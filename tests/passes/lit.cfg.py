# lit configuration for wispy's IR-in/IR-out pass tests: `wispy opt` + FileCheck.
import os
import shutil
import sys

import lit.formats

config.name = "wispy-passes"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["Output"]
bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
# a checkout run with PYTHONPATH (a second worktree) tests its own wispy, not the installed one
config.environment["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
# `wispy` and `filecheck` come from the project's virtual environment.
config.substitutions.append(("%wispy-opt", f"{sys.executable} -m wispy opt"))
config.substitutions.append(("%filecheck", shutil.which("filecheck", path=config.environment["PATH"]) or "filecheck"))
