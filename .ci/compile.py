"""Build, check or remove the compiled engine modules (issue 18; ``store/compiled.py``).

    .venv/bin/python .ci/compile.py            # build if missing or stale (what .ci/setup runs)
    .venv/bin/python .ci/compile.py --check    # exit 1 (and say why) unless the build is current
    .venv/bin/python .ci/compile.py --remove   # remove every compiled file and the build dir

mypyc compiles the modules ``store.compiled.MODULES`` lists into extension modules beside their
``.py`` files (one shared library, ``store/_compiled__mypyc.*.so``), then writes the stamp
that lets them be imported. The stamp is written last, and removed first: a build that fails
half-way leaves files the import system ignores (the ``.py`` files are used).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["GATEWATCH_PURE_PYTHON"] = "1"  # this process needs no compiled module

from store import compiled  # noqa: E402

BUILD = ROOT / "build" / "mypyc"


def remove() -> None:
    compiled.STAMP.unlink(missing_ok=True)
    for module in compiled.MODULES:
        for path in compiled.extension_paths(module):
            path.unlink()
    for path in compiled.shared_library_paths():
        path.unlink()
    shutil.rmtree(BUILD, ignore_errors=True)
    with contextlib.suppress(OSError):
        BUILD.parent.rmdir()  # build/, when nothing else is there


SETUP_PY = """\
from setuptools import setup
from mypyc.build import mypycify

setup(name="gatewatch-compiled", py_modules=[],
      ext_modules=mypycify({paths!r}, group_name={group!r}, opt_level="3", debug_level="0",
                           target_dir={target!r}))
"""


def build() -> None:
    remove()
    BUILD.mkdir(parents=True)
    paths = [str(compiled.source_path(m).relative_to(ROOT)) for m in compiled.MODULES]
    script = BUILD / "setup_compiled.py"
    script.write_text(SETUP_PY.format(paths=paths, group=compiled.GROUP,
                                      target=str((BUILD / "c").relative_to(ROOT))))
    fingerprint = compiled.fingerprint()  # the sources as they were when compiled
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    jobs = str(max(1, len(os.sched_getaffinity(0))))
    subprocess.run([sys.executable, str(script), "-q", "build_ext", "--inplace",
                    "--build-temp", str(BUILD / "temp"), "--build-lib", str(BUILD / "lib"),
                    "--parallel", jobs],
                   cwd=ROOT, env=env, check=True)
    # The sources as they were compiled: one edited meanwhile makes the build stale (unused).
    compiled.STAMP.write_text(json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true", help="is the build current?")
    what.add_argument("--remove", action="store_true", help="remove the compiled files")
    what.add_argument("--force", action="store_true", help="build even when current")
    args = ap.parse_args()
    if args.remove:
        remove()
        return 0
    reason = compiled.stale_reason()
    if args.check:
        if reason is not None:
            print(f"compile: not current: {reason}", file=sys.stderr)
            return 1
        return 0
    if reason is None and not args.force:
        return 0
    started = time.monotonic()
    try:
        build()
    except (subprocess.CalledProcessError, OSError) as exc:
        remove()
        print(f"compile: the build failed ({exc}); the pure-Python modules are used",
              file=sys.stderr)
        return 1
    reason = compiled.stale_reason()
    if reason is not None:
        print(f"compile: the build is not used ({reason}); run it again", file=sys.stderr)
        return 1
    print(f"compile: {len(compiled.MODULES)} modules compiled in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
