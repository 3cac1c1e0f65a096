"""The compiled build of the engine's hot modules (issue 18, ``store/compiled.py``): used whole
when it matches the sources, never when it does not, and the suite tests the build users run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from store import compiled

ROOT = Path(__file__).resolve().parents[1]


def _fake_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for package in compiled.PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return root


def _stamp(root: Path) -> Path:
    stamp = root / compiled.STAMP.relative_to(compiled.ROOT)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(compiled.fingerprint(root)))
    for module in compiled.MODULES:  # stand-ins for the compiled files
        path = compiled.source_path(module, root)
        path.with_name(path.stem + ".cpython-311-test.so").write_bytes(b"")
    (root / "store" / "_compiled__mypyc.cpython-311-test.so").write_bytes(b"")
    return stamp


def test_a_build_matching_its_stamp_may_be_used(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path)
    _stamp(root)
    assert compiled.stale_reason(root) is None


def test_an_edited_source_makes_the_whole_build_stale(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path)
    _stamp(root)
    # Not a compiled module: the compiled ones were compiled against its types and constants.
    edited = root / "engine" / "session.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert "engine/session.py" in (compiled.stale_reason(root) or "")


def test_an_edit_that_keeps_size_and_time_is_still_seen(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path)
    _stamp(root)
    path = compiled.source_path("engine.pg.relay", root)
    text = path.read_bytes()
    stat = path.stat()
    path.write_bytes(text.replace(b"fail closed", b"fail_closed", 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "engine/pg/relay.py" in (compiled.stale_reason(root) or "")


def test_a_new_or_removed_source_makes_it_stale(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path)
    _stamp(root)
    (root / "engine" / "pg" / "extra.py").write_text("X = 1\n")
    assert "engine/pg/extra.py" in (compiled.stale_reason(root) or "")


def test_a_missing_compiled_file_or_stamp_makes_it_stale(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path)
    stamp = _stamp(root)
    for path in compiled.extension_paths("store.journal", root):
        path.unlink()
    assert "store.journal" in (compiled.stale_reason(root) or "")
    stamp.unlink()
    assert "no readable stamp" in (compiled.stale_reason(root) or "")


def _loaded_from(env: dict[str, str], root: Path = ROOT) -> tuple[list[str], str]:
    code = ("import json, importlib, store.compiled as c; "
            "print(json.dumps([importlib.import_module(m).__file__ for m in c.MODULES]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root), **env}, check=True)
    return json.loads(done.stdout), done.stderr


needs_build = pytest.mark.skipif(not compiled.built(), reason="no compiled build (.ci/setup)")


@needs_build
def test_the_suite_runs_the_compiled_build() -> None:
    """What users run is what is tested: with a build in the checkout every listed module is
    its compiled file (a stale build fails here: run ``bash .ci/setup``)."""
    if compiled.disabled():
        pytest.skip("GATEWATCH_PURE_PYTHON is set")
    assert compiled.status() == "compiled", compiled.status()
    for module in compiled.MODULES:
        loaded = sys.modules.get(module) or __import__(module, fromlist=["_"])
        assert str(loaded.__file__).endswith(".so"), module


@needs_build
def test_opting_out_loads_every_module_from_its_source() -> None:
    files, _ = _loaded_from({"GATEWATCH_PURE_PYTHON": "1"})
    assert files and all(f.endswith(".py") for f in files), files


@needs_build
def test_an_edited_source_is_never_shadowed_by_its_compiled_file(tmp_path: Path) -> None:
    """A checkout with a build whose sources were edited since: every listed module loads from
    its .py (the compiled ones call each other directly, so none is used), with a warning."""
    if compiled.stale_reason() is not None:
        pytest.skip(f"the build here is stale: {compiled.stale_reason()}")
    root = tmp_path / "checkout"
    for package in compiled.PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    stamp = root / compiled.STAMP.relative_to(compiled.ROOT)
    stamp.parent.mkdir(parents=True)
    shutil.copy2(compiled.STAMP, stamp)
    files, _ = _loaded_from({"GATEWATCH_PURE_PYTHON": ""}, root)
    assert all(f.endswith(".so") for f in files), files  # the copy is current
    codec = compiled.source_path("engine.pg.codec", root)
    codec.write_text(codec.read_text() + "\nEDITED = True\n")
    files, stderr = _loaded_from({"GATEWATCH_PURE_PYTHON": ""}, root)
    assert all(f.endswith(".py") for f in files), files
    assert "StaleCompiledBuild" in stderr and "engine/pg/codec.py" in stderr


def test_mypy_checks_every_compiled_module_for_checks_it_decides() -> None:
    """pyproject's mypy override for the compiled modules (a narrowed attribute that a call
    changed is trusted by mypyc) names exactly the modules that are compiled."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    overrides = [o for o in config["tool"]["mypy"]["overrides"] if o.get("warn_unreachable")]
    assert len(overrides) == 1
    assert sorted(overrides[0]["module"]) == sorted(compiled.MODULES)
    assert "redundant-expr" in overrides[0]["enable_error_code"]


PURE_FILES = ["tests/engine/masking/test_pieces.py", "tests/engine/masking/test_large_values.py",
              "tests/engine/pg/test_results.py"]


def test_the_tests_that_inject_fakes_run_with_the_py_files() -> None:
    """Tests marked ``pure_python`` (``tests/pure.py``) skip where the compiled build is in
    use: here they run in a process of their own with the ``.py`` files."""
    from tests.pure import compiled as is_compiled

    if not is_compiled("engine.pg.results"):
        pytest.skip("the .py files are in use: the pure_python tests ran in this process")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         "-m", "pure_python", *PURE_FILES],
        cwd=ROOT, env={**os.environ, "GATEWATCH_PURE_PYTHON": "1"}, capture_output=True,
        text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]
