"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module's tests (restored after). Two OpenMP threads on this
    2-core machine spin against each other whenever anything else runs (the IREE runtime's
    workers, qemu, other jobs): a gru-small training step measured 3.2 s with 2 threads
    against 0.27 s with 1 under load (see wispy.experiments.accuracy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
