"""The suite's warning policy (pyproject.toml filterwarnings): every warning fails a test,
except a deprecation another package raises about its own code (issue 18)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = '''
import warnings
def test_third_party_deprecation():
    warnings.warn_explicit("old", DeprecationWarning, "lib.py", 1, module="somelib")
def test_tapegrad_deprecation():
    warnings.warn_explicit("old", DeprecationWarning, "nn.py", 1, module="tapegrad.nn")
def test_runtime_warning():
    warnings.warn("bad", RuntimeWarning)
'''


def test_only_third_party_deprecations_pass(tmp_path):
    probe = tmp_path / "probe_test.py"
    probe.write_text(PROBE)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-c", os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tmp_path), str(probe)],
                       capture_output=True, text=True)
    assert "probe_test.py::test_tapegrad_deprecation" in r.stdout and "probe_test.py::test_runtime_warning" in r.stdout
    assert "2 failed, 1 passed" in r.stdout, r.stdout[-2000:]
