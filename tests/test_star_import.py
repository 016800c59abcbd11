"""``from tapegrad import *`` must not shadow Python's builtins (issue 18), yet export every other public name."""
import builtins
import subprocess
import sys

import tapegrad


def test_all_excludes_builtins_and_names_exist():
    shadowing = set(tapegrad.__all__) & set(dir(builtins))
    assert not shadowing, f"__all__ shadows builtins: {sorted(shadowing)}"
    missing = [n for n in tapegrad.__all__ if not hasattr(tapegrad, n)]
    assert not missing, missing
    # the ops and compositions of the spec that are not builtin names are all exported
    spec = set(tapegrad._core.__ops__) | set(tapegrad._core.__compositions__)
    assert spec - set(dir(builtins)) <= set(tapegrad.__all__)
    assert {"Variable", "nn", "optim", "grad", "no_grad", "exp"} <= set(tapegrad.__all__)
    # the excluded ones are still there under tg.<name>
    for name in ("sum", "max", "min", "abs", "round"):
        assert name in spec and callable(getattr(tapegrad, name))
    assert tapegrad.sum(tapegrad.Variable([1.0, 2.0, 3.0])).item() == 6.0


def test_star_import_keeps_builtins_in_a_fresh_interpreter():
    code = ("from tapegrad import *\n"
            "assert max(3, 5) == 5 and min(3, 5) == 3 and sum([1, 2]) == 3 and abs(-2) == 2 and round(2.6) == 3\n"
            "v = exp(Variable([0.0]))\n"
            "assert v.item() == 1.0\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")
