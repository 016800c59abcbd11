"""The random-program generator (tests/random_programs.py) in the suite: a
seeded run of 2,000 programs, C++ engine vs reference in value, backward, jvp
and Jacobian (~45 s). A longer run, for local use:

    python -m tests.random_programs --n 100000 --seed 1
    TAPEGRAD_RANDOM_PROGRAMS=100000 python -m pytest tests/test_random_programs.py
"""
import os

import numpy as np
import pytest

import tapegrad as tg

from tests import random_programs as rp

N_PROGRAMS = int(os.environ.get("TAPEGRAD_RANDOM_PROGRAMS", "2000"))
CHUNKS = 8
SEED = int(os.environ.get("TAPEGRAD_RANDOM_PROGRAMS_SEED", "20261206"))


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_programs(chunk):
    per = -(-N_PROGRAMS // CHUNKS)
    start = SEED + chunk * per
    n = max(0, min(per, N_PROGRAMS - chunk * per))
    counts, failures = rp.run(n, start, stop_after=3)
    if failures:
        prog, out = failures[0]
        small = rp.shrink(prog)
        pytest.fail(f"{len(failures)} failing program(s); seed {prog.seed}: {out.message}\n{prog.source()}\n"
                    f"-- shortest failing prefix:\n{small.source()}\n"
                    f"(replay: python -c 'from tests import random_programs as rp; "
                    f"print(rp.check(rp.generate({prog.seed}))))')")
    # Most programs must be compared, not skipped as ambiguous at a kink.
    assert counts["ambiguous"] <= 0.1 * n + 2, counts


def test_generator_is_deterministic():
    a, b = rp.generate(123), rp.generate(123)
    assert a.source() == b.source()


def test_table_covers_the_public_api():
    """Every op of the spec is in the one table, as a function and (where the spec says so) a Variable
    method; so are the operators and the losses."""
    names = set(rp.public_op_names())
    spec = tg._core.__ops__
    assert set(spec) <= names, set(spec) - names
    methods = {"Variable." + n for n, op in spec.items() if op["method"]}
    assert methods <= names, methods - names
    operators = {"Variable." + m for m in ("T", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
                                           "__truediv__", "__rtruediv__", "__pow__", "__rpow__", "__matmul__",
                                           "__rmatmul__", "__neg__", "__getitem__")}
    assert operators <= names, operators - names
    losses = {"nn.mse_loss", "nn.l1_loss", "nn.cross_entropy", "nn.binary_cross_entropy_with_logits"}
    assert losses <= names


def test_a_wrong_rule_is_caught(monkeypatch):
    """The comparison is not vacuous: a C++ op that is off by a little fails some program."""
    real = tg.tanh
    monkeypatch.setitem(rp.OPS, "tanh", rp.dataclasses.replace(
        rp.OPS["tanh"], call=lambda E, x: real(x) * 1.001 if E is tg else E.tanh(x)))
    found = False
    for s in range(200):
        prog = rp.generate(s, ops=["tanh", "add", "sum"])
        if rp.check(prog).status == "fail":
            found = True
            break
    assert found
