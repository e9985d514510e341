"""``pytest -n N``: every item of one model runs on one worker, so each worker loads a model once.

pytest-xdist's own ``--dist loadgroup`` renames each item's node id to carry its group, which
pytest 9 no longer allows (node ids became read-only), so its groups silently fall apart there. So
icltest brings a scheduler of its own: xdist's scope scheduling, with the scope of a spec item
being its model (the spec file's ``model:``, or ``--icl-model`` for files that name none). Two spec
files about one model share a worker; a Python test file's tests are spread one by one as with
plain ``--dist load``. Reports do not depend on any of this: records are merged in serial order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from xdist.scheduler import LoadScopeScheduling


def model_group(config: Any, file: str) -> str | None:
    """The model a spec file's items run on, as a group name; None for anything else."""
    path = Path(config.rootpath) / file
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the workers report the broken file; it is its own group
    model = data.get("model") if isinstance(data, dict) else None
    if model is None:
        model = config.getoption("icl_model", None) or config.getini("icl_model")
    if isinstance(model, dict):
        model = next((model[k] for k in ("alias", "id", "path") if model.get(k)), None)
    return f"model:{model}" if model else None


class ModelGroupScheduling(LoadScopeScheduling):
    """Scope = the item's model (spec items) or the item itself (everything else)."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self._groups: dict[str, str | None] = {}

    def _split_scope(self, nodeid: str) -> str:
        file = nodeid.split("::", 1)[0]
        if file not in self._groups:
            self._groups[file] = model_group(self.config, file)
        return self._groups[file] or nodeid
