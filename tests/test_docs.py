"""The docs run and cover the API.

(a) Every ```python snippet of README.md and docs/*.md runs: each file's
    snippets in order, in one namespace per file (as a doctest session
    would), in a scratch folder. A snippet that must not run is preceded by
    the line `<!-- test_docs: skip (why) -->` (grep for `test_docs: skip`).
(b) Every public name of the modules in DOCUMENTED_MODULES appears in code
    (a `code span` or a code block) of some docs/*.md file.
"""
import glob
import importlib
import inspect
import os
import re
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
SKIP = "<!-- test_docs: skip"
FENCE = re.compile(r"^( *)```python[^\n]*\n(.*?)^\1```", re.S | re.M)

# The modules whose every public name (`__all__`, else the names not starting
# with "_", modules excluded) must be in docs/*.md. tapegrad.nn, tapegrad.optim
# and tapegrad.data are documented in docs/NN.md: add them here with it.
DOCUMENTED_MODULES = ["tapegrad", "tapegrad.functional", "tapegrad.numeric", "tapegrad.gradcheck",
                      "tapegrad.testing", "tapegrad.custom", "tapegrad.symbolic", "tapegrad.reference",
                      "tapegrad.linalg", "tapegrad.nn", "tapegrad.nn.init", "tapegrad.optim", "tapegrad.data",
                      "tapegrad.distributed"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def snippets(path):
    """[(line number, code)] of the file's ```python blocks that run."""
    text = read(path)
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before.startswith(SKIP):
            continue
        indent = len(m.group(1))
        code = "\n".join(line[indent:] for line in m.group(2).splitlines())
        out.append((text[:m.start()].count("\n") + 1, code))
    return out


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_snippets_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a snippet that writes files writes them here
    namespace = {"__name__": "__docs__"}
    for line, code in snippets(path):
        try:
            exec(compile(code, f"{os.path.relpath(path, ROOT)}:{line}", "exec"), namespace)
        except Exception as e:  # the message names the file and the snippet's line
            raise AssertionError(f"{os.path.relpath(path, ROOT)}, snippet at line {line}: "
                                 f"{type(e).__name__}: {e}") from e


def test_snippets_are_found():
    # the fence pattern sees indented snippets (in lists) too, and the skip marker is rare
    api = os.path.join(ROOT, "docs", "API.md")
    assert any("custom_op" in code for _, code in snippets(api))
    skipped = sum(read(p).count(SKIP) for p in DOC_FILES)
    assert skipped <= 3, "more than a few snippets skipped: make them run"


def public_names(modname):
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    return [n for n in names if not isinstance(getattr(mod, n), types.ModuleType)]


def code_in_docs():
    """The text of every code span and code block of docs/*.md."""
    parts = []
    for path in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        text = read(path)
        parts += re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, re.S | re.M)
        text = re.sub(r"^ *```[^\n]*\n(.*?)^ *```", "", text, flags=re.S | re.M)
        parts += re.findall(r"`([^`\n]+)`", text)
    return "\n".join(parts)


@pytest.mark.parametrize("modname", DOCUMENTED_MODULES)
def test_every_public_name_is_documented(modname):
    code = code_in_docs()
    missing = [n for n in public_names(modname) if not re.search(rf"\b{re.escape(n)}\b", code)]
    assert not missing, f"{modname}: public names in no docs/*.md code: {missing}"


# Docstrings: every public function, class, method and property of these
# modules (tapegrad.symbolic and tapegrad.reference mirror tapegrad's op names).
DOCSTRING_MODULES = ["tapegrad", "tapegrad.functional", "tapegrad.numeric", "tapegrad.gradcheck",
                     "tapegrad.testing", "tapegrad.custom", "tapegrad.linalg", "tapegrad.nn", "tapegrad.nn.init",
                     "tapegrad.optim", "tapegrad.data", "tapegrad.distributed"]


def undocumented(modname):
    mod = importlib.import_module(modname)
    for name in public_names(modname):
        obj = getattr(mod, name)
        if not callable(obj):
            continue
        if not (obj.__doc__ or "").strip():
            yield name
        if isinstance(obj, type) and (obj.__module__ or "").startswith("tapegrad"):
            for attr, member in vars(obj).items():
                # inspect.getdoc: an override (Linear.forward) inherits its base's docstring (Layer.forward)
                if not attr.startswith("_") and (callable(member) or isinstance(member, property)) \
                        and not (inspect.getdoc(getattr(obj, attr)) or "").strip():
                    yield f"{name}.{attr}"


@pytest.mark.parametrize("modname", DOCSTRING_MODULES)
def test_every_public_callable_has_a_docstring(modname):
    missing = list(undocumented(modname))
    assert not missing, f"{modname}: no docstring: {missing}"
