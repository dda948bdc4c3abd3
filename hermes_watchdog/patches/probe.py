"""What a gateway interpreter has, asked in it: run as a script by the installer (``python probe.py``), it
prints as JSON the Hermes version (or git checkout and commit), site-packages, and for each fix of
patches/fixes.py whether this Hermes needs it (by behaviour), changing nothing. Standard library only: it
runs in Hermes' interpreter, where hermes_watchdog is not installed, and loads fixes.py from beside it under a
name of its own (the folder on sys.path could shadow a module of Hermes).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    del sys.path[0]  # the script's folder: hook.py, installer.py... must not shadow Hermes' own modules
_spec = importlib.util.spec_from_file_location("hermes_watchdog_fixes_probe", os.path.join(_HERE, "fixes.py"))
assert _spec is not None and _spec.loader is not None
fixes = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fixes  # dataclasses look their module up while the class is made
_spec.loader.exec_module(fixes)


def checkout() -> dict[str, str | None] | None:
    """A git checkout of Hermes on this interpreter's path (``~/.hermes/hermes-agent``): its root, the
    version in hermes_cli/__init__.py, and the commit when .git exists. None for an installed wheel."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("hermes_cli")
    if spec is None or not spec.origin:
        return None
    root = os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))
    if os.path.basename(root) in {"site-packages", "dist-packages"}:
        return None
    with open(spec.origin, encoding="utf-8", errors="replace") as fh:
        m = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", fh.read(65536), re.M)
    return {"root": root, "version": m.group(1) if m else None, "commit": _git_commit(root)}


def _git_commit(root: str) -> str | None:
    """HEAD's commit, read from the files (no git needed): a detached hash, a loose ref or packed-refs."""
    git = os.path.join(root, ".git")
    try:
        if os.path.isfile(git):  # a worktree: "gitdir: <path>"
            with open(git) as fh:
                git = os.path.join(root, fh.read().split(":", 1)[1].strip())
        with open(os.path.join(git, "HEAD")) as fh:
            head = fh.read().strip()
        if not head.startswith("ref:"):
            return head[:40] or None
        ref = head.split(":", 1)[1].strip()
        for base in (git, _common_dir(git)):
            with contextlib.suppress(OSError), open(os.path.join(base, ref)) as fh:
                return fh.read().strip()[:40]
            with contextlib.suppress(OSError), open(os.path.join(base, "packed-refs")) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0][:40]
    except (OSError, IndexError):
        return None
    return None


def _common_dir(git: str) -> str:
    try:
        with open(os.path.join(git, "commondir")) as fh:
            return os.path.normpath(os.path.join(git, fh.read().strip()))
    except OSError:
        return git


def main() -> int:
    """Print, as JSON, what this interpreter has: Hermes version (or checkout), site-packages, and for each
    fix whether it is needed (by behaviour). Imports the adapters with the patches switched off."""
    import sysconfig

    os.environ[fixes.ENV_SWITCH] = "0"
    out: dict[str, object] = {"python": sys.version.split()[0], "executable": sys.executable,
                              "purelib": sysconfig.get_paths()["purelib"]}
    try:
        from importlib.metadata import version

        out["hermes"] = version("hermes-agent")
    except Exception:
        out["hermes"] = None
    try:
        out["checkout"] = checkout()
    except Exception:
        out["checkout"] = None
    found: dict[str, str] = {}
    for fix in fixes.FIXES:
        found[fix.name] = "absent"
        for target in fix.targets:
            try:
                module = importlib.import_module(target)
            except ModuleNotFoundError as exc:
                if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
                    continue  # this Hermes has no such module
                found[fix.name] = f"import failed: {type(exc).__name__}: {exc}"
                break
            except Exception as exc:
                found[fix.name] = f"import failed: {type(exc).__name__}: {exc}"
                break
            cls = getattr(module, fix.cls, None)
            found[fix.name] = fixes.probe(fix, cls) if isinstance(cls, type) else "unknown"
            break
    out["fixes"] = found
    out["adapter"] = found.get("qqbot")  # older readers
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
