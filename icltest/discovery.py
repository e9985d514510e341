"""Which YAML files are spec files: conventional names and folders, or named on the command line.

Why opt-in: once the plugin is installed it sees every ``*.yaml`` in a repository, and another
tool's config that happens to have top-level ``schema_version:`` and ``claims:`` keys became a
collection error. So, like pytest's own ``python_files``, a file is collected only when

- it matches a pattern of the ini option ``icl_spec_paths`` (default :data:`DEFAULT_SPEC_PATHS`:
  ``icl_*.yaml`` and ``*.icl.yaml`` anywhere, every YAML file under ``specs/`` and ``suites/`` at
  the rootdir; ``.yml`` alike) and its first :data:`HEAD_BYTES` bytes have a top-level
  ``schema_version:`` key, or
- it was named on the command line (``pytest path/to/file.yaml``) and its head mentions
  ``schema_version`` at all, so that a malformed spec the user asked for (a list at the top
  level, an indented key) gets its located error instead of "no collectors".

Only the head of a file is read: deciding must stay cheap on repositories with large YAML files.
"""
from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

DEFAULT_SPEC_PATHS: tuple[str, ...] = (
    "icl_*.yaml", "icl_*.yml", "*.icl.yaml", "*.icl.yml",
    "specs/*.yaml", "specs/*.yml", "suites/*.yaml", "suites/*.yml",
)
"""Patterns without a ``/`` match the file name in any folder; patterns with one match the path
relative to the rootdir, where ``*`` also crosses folders (``specs/*.yaml`` covers ``specs/a/b.yaml``)."""
HEAD_BYTES = 4096
_TOP_LEVEL = re.compile(r"^schema_version\s*:", re.M)
_ANYWHERE = re.compile(r"schema_version")


def matches(path: Path, rootdir: Path, patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether ``path`` matches one of ``patterns`` (see :data:`DEFAULT_SPEC_PATHS` for the rules)."""
    try:
        relative = path.resolve().relative_to(rootdir.resolve()).as_posix()
    except ValueError:  # outside the rootdir: only file-name patterns can apply
        relative = None
    for pattern in patterns:
        if "/" not in pattern:
            if fnmatch(path.name, pattern):
                return True
        elif relative is not None and fnmatch(relative, pattern.lstrip("./")):
            return True
    return False


def looks_like_spec(path: Path, named: bool) -> bool:
    """Whether the head of the file declares a spec (``named``: it was given on the command line)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(HEAD_BYTES)
        encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
        head = raw.decode(encoding, errors="replace")  # a BOM must not hide a first-line key
    except OSError:
        return False
    return bool((_ANYWHERE if named else _TOP_LEVEL).search(head))
