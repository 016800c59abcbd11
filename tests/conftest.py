"""Fixtures shared by several test modules (plain helper functions are in helpers.py)."""
import pytest

import tapegrad as tg
from tapegrad import _core

from helpers import ENGINE_NAMES, engine_by_name, force_grad_enabled


@pytest.fixture(params=ENGINE_NAMES)
def m(request):
    """Each engine module in turn: tapegrad, then tapegrad.reference."""
    return engine_by_name(request.param)


@pytest.fixture
def restore_grad_mode():
    """A failing grad-mode test must not leave this thread in no_grad for the next tests.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("restore_grad_mode")``.
    """
    yield
    force_grad_enabled()


@pytest.fixture
def restore_isa_and_threads():
    """Tests that switch the kernels' ISA build or the thread count leave both as they found them."""
    isa, threads = _core._isa(), tg.get_num_threads()
    yield
    _core._set_isa(isa)
    tg.set_num_threads(threads)


@pytest.fixture
def restore_threads():
    """Tests that set the thread count freely (tg.set_num_threads) leave it as they found it."""
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)
