"""Training: one CTC loop (`train_ctc`) and evaluation (`evaluate`)."""
from wispy.training.ctc import train_ctc  # noqa: F401
from wispy.training.evaluate import compile_for_eval, evaluate  # noqa: F401
