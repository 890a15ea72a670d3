"""Training: one CTC epoch loop with hooks (`run_epoch`) that every trainer runs, CTC training
from scratch (`train_ctc`) and evaluation (`evaluate`)."""
from wispy.training.ctc import train_ctc  # noqa: F401
from wispy.training.data import prepare_data  # noqa: F401
from wispy.training.evaluate import compile_for_eval, evaluate  # noqa: F401
from wispy.training.loop import EpochHooks, run_epoch  # noqa: F401
