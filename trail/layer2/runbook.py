"""Loading a runbook file: the convention ``trail run`` and ``trail dot`` rely on.

A runbook is a Python file that defines, at module level:

- ``trail`` (required): the trail definition (pairs, ``a >> b``, a Step, a DiGraph);
- ``context`` (optional): the object every step receives;
- ``executor`` (optional): 'process' (default) or 'thread';
- ``ANSWERS`` (optional): step name -> reply, for ``trail run --auto-answer``;
- ``max_parallel`` (optional): at most this many steps at once.

A ``.yaml`` or ``.yml`` file is a YAML runbook (``trail.layer2.yamlbook``): it becomes the
same Runbook, with its own ``name``.

The file is run with ``__name__ == "__runbook__"``, so an ``if __name__ == "__main__":``
block (a script's own way to run itself) is left alone.
"""

from __future__ import annotations

import runpy
import traceback
from pathlib import Path

from trail.core.dag import make_trail_graph
from trail.errors import DefinitionError, RunbookError
from trail.layer2.book import Runbook


def load_runbook(path: str | Path) -> Runbook:
    """Run a runbook file and collect its trail; RunbookError says what is wrong, and where."""
    path = Path(path)
    if not path.is_file():
        raise RunbookError(f"{path}: no such runbook file")
    if path.suffix.lower() in (".yaml", ".yml"):
        from trail.layer2.yamlbook import load_yaml_runbook  # ruamel and jsonschema: on demand

        return load_yaml_runbook(path)
    try:
        namespace = runpy.run_path(str(path), run_name="__runbook__")
    except SyntaxError as exc:
        raise RunbookError(f"{exc.filename}, line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        raise RunbookError(f"{path} raised {type(exc).__name__}: {exc} "
                           f"({frame.filename}, line {frame.lineno})") from exc
    if "trail" not in namespace:
        raise RunbookError(f"{path} defines no `trail` (the trail definition to run)")
    try:
        make_trail_graph(namespace["trail"])
    except DefinitionError as exc:
        raise RunbookError(f"{path}: {exc}") from exc
    return Runbook(path, namespace["trail"], namespace.get("context"),
                   namespace.get("executor", "process"), dict(namespace.get("ANSWERS", {})),
                   namespace.get("max_parallel"))
