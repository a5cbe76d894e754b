"""JSON helpers every module uses: numbers with NaN as ``null``, loading a file or failing clearly, the
plain JSON value of a record part and its check against a shipped JSON schema.

A leaf (imports only :mod:`.errors`), so the scoring core may use it too.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HfusError

__all__ = [
    "check_schema",
    "dumps_compact_lists",
    "from_json_numbers",
    "json_default",
    "json_number",
    "json_numbers",
    "load_json",
    "plain_json",
    "shipped_schema",
]


def json_number(value: Any) -> float | None:
    """A JSON-safe float: ``float(value)``, or None when it is NaN or infinite (numpy scalars accepted)."""
    x = float(value)
    return x if math.isfinite(x) else None


def json_numbers(value: Any) -> Any:
    """A float64 array (any shape) as nested lists, NaN/inf → None; a 0-d value as :func:`json_number`.

    JSON keeps every finite float64 exactly (``repr`` round trip).
    """
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return json_number(arr)
    return [json_numbers(x) for x in arr]


def from_json_numbers(value: Any) -> np.ndarray:
    """The inverse of :func:`json_numbers`: nested lists with None → a float64 array with NaN."""
    return np.array(value, dtype=np.float64) if value is not None else np.array(np.nan)


def dumps_compact_lists(value: Any) -> str:
    """``value`` as JSON with sorted keys, one key or nested container per line (indent 1), and every list
    of scalars on one line: a file a reviewer can diff by key, without one line per number. NaN and
    infinity are errors; ``json.loads`` gives ``value`` back."""
    return _dumps(value, "")


def _dumps(value: Any, pad: str) -> str:
    inner = pad + " "
    if isinstance(value, dict) and value:
        keys = sorted(value)
        lines = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dumps(value[k], inner)}" for k in keys]
        return "{\n" + ",\n".join(lines) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(x, (dict, list)) for x in value):
        return "[\n" + ",\n".join(inner + _dumps(x, inner) for x in value) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def load_json(path: str | Path, what: str = "file") -> Any:
    """The parsed JSON of ``path``; one :class:`HfusError` naming ``what`` when it is missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise HfusError(f"file not found: {path} (expected a {what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HfusError(f"{path} is not valid JSON ({err}); pass a {what} written by hfus-bench") from err


def json_default(obj: Any) -> Any:
    """``json.dumps``' ``default`` for records: numpy scalars as Python numbers, paths as strings; anything
    else is a TypeError."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def plain_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples → lists, numpy scalars → numbers); TypeError for a value
    JSON cannot hold."""
    return json.loads(json.dumps(value, default=json_default))


def shipped_schema(name: str) -> dict[str, Any]:
    """The JSON schema file ``hfus_xai_bench/schemas/<name>.schema.json`` as shipped with the package."""
    return json.loads(
        resources.files("hfus_xai_bench").joinpath("schemas", f"{name}.schema.json").read_text()
    )


def check_schema(value: Any, schema: dict[str, Any], source: str) -> None:
    """Raise HfusError ``"<source>: invalid at <field>: <why>"`` for the first field of ``value`` that breaks
    ``schema``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise HfusError(f"{source}: invalid at {where}: {err.message}")
