"""Settings from the environment: a bad value warns once at import, naming the accepted values."""
import os
import subprocess
import sys

import pytest


def _import_with(env):
    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import tapegrad as tg\n"
            "print('@@', tg._core._isa())\n"
            "for x in w: print('@@', x.category.__name__, '|', x.message)\n")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # (an editable install with editable.rebuild=true prints its cmake run to stdout on import)
    lines = [line[3:] for line in r.stdout.splitlines() if line.startswith("@@ ")]
    return lines[0], lines[1:]


@pytest.mark.parametrize("env, message", [
    ({"TAPEGRAD_ISA": "sse9"}, "TAPEGRAD_ISA='sse9' is not one of baseline, avx2, avx512"),
    ({"TAPEGRAD_CACHE_LIMIT_MB": "lots"}, "TAPEGRAD_CACHE_LIMIT_MB='lots' is not a whole number of megabytes"),
    ({"TAPEGRAD_CACHE_LIMIT_MB": "-5"}, "TAPEGRAD_CACHE_LIMIT_MB='-5' is not a whole number of megabytes"),
    ({"TAPEGRAD_CACHE_LIMIT_MB": "12abc"}, "TAPEGRAD_CACHE_LIMIT_MB='12abc'"),
])
def test_invalid_setting_warns_once_and_falls_back(env, message):
    _, warnings = _import_with(env)
    assert len(warnings) == 1 and warnings[0].startswith("RuntimeWarning |") and message in warnings[0], warnings


@pytest.mark.parametrize("env", [{"TAPEGRAD_ISA": "baseline"}, {"TAPEGRAD_ISA": "avx512"},
                                 {"TAPEGRAD_CACHE_LIMIT_MB": "0"}, {"TAPEGRAD_CACHE_LIMIT_MB": "256"}])
def test_valid_setting_is_silent(env):
    isa, warnings = _import_with(env)
    assert warnings == []
    if env.get("TAPEGRAD_ISA") == "baseline":
        assert isa == "baseline"


def test_the_version_is_written_in_one_place():
    # pyproject.toml reads it from __init__.py at build time (scikit-build-core's regex provider);
    # the installed metadata and tapegrad.__version__ must agree.
    import importlib.metadata
    import pathlib
    import tomllib

    import tapegrad

    root = pathlib.Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("tapegrad") == tapegrad.__version__
