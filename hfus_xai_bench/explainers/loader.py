"""Find a method by name, file or entry point, and check what it declares (METADATA, name, kind).

Its outputs become checked ``m255`` maps in :mod:`.contract` (:func:`~.contract.to_m255`)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import HfusError
from ..hashing import sha256_file
from ..jsonio import check_schema, plain_json, shipped_schema
from .contract import METHOD_ERRORS, ExplainContext, MapKind, describe_error
from .registry import BUILTIN_METHODS, BUILTINS, FAMILY_METADATA

ENTRY_POINT_GROUP = "hfus_xai_bench.explainers"
METADATA_KEYS = (
    "name",
    "authors",
    "url",
    "licence",
    "hyperparameters",
    "tuning_split",
    "kind",
    "citation",
    "not_applicable",
)
#: METADATA keys only built-in reference rows declare (PROTOCOL §9: ``"reference": "oracle"``, ``"reads":
#: ("evidence",)``, the runner then hands them the evidence masks); a method file or entry point may not
RESERVED_KEYS = ("reference", "reads")
#: A method name is a file name (``results/<name>.json``, ``.png``): letters, digits and ``_ . - @``,
#: starting with a letter or a digit (so never a path, ``..`` or a hidden file)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
NAME_RULE = "letters, digits and _ . - @, starting with a letter or digit"


@dataclass
class Method:
    """A loaded method: how to build a per-model callable, and what it declares about itself."""

    name: str
    source: str  # "builtin", "file:<path>", "entry_point:<name>"
    kind: MapKind
    factory: Callable[[nn.Module, ExplainContext], Callable[[torch.Tensor, torch.Tensor], Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None
    #: sha256 of the method file (file methods; recorded as ``record["method"]["sha256"]``)
    sha256: str | None = None
    #: the other form the file defines but the harness does not call (``explain`` beside a class
    #: ``Explainer``, which wins), or None
    unused: str | None = None

    def not_applicable(self, arch: str) -> str | None:
        """Why the method is undefined on ``arch`` (METADATA ``not_applicable``: arch -> reason), or None."""
        reasons = self.metadata.get("not_applicable") or {}
        return reasons.get(arch)

    def applicable(self, arch: str) -> bool:
        """False where the method declares itself undefined on ``arch``: the runner skips it there (n/a)."""
        return self.not_applicable(arch) is None

    def build(self, model: nn.Module, context: ExplainContext) -> Callable[[torch.Tensor, torch.Tensor], Any]:
        """The per-model callable ``(images, targets) -> raw output``."""
        try:
            return self.factory(model, context)
        except HfusError:
            raise
        except METHOD_ERRORS as err:
            raise HfusError(
                f"method {self.name!r} failed to initialise: {describe_error(err, self.file)}"
            ) from err


def _metadata_schema() -> dict[str, Any]:
    """The result schema's ``method`` part, as METADATA declares it (every key optional; unknown keys are
    refused by name before)."""
    schema = dict(shipped_schema("result")["properties"]["method"])
    schema.pop("required", None)
    schema.pop("additionalProperties", None)
    return schema


def _check_metadata(metadata: dict[str, Any], source: str) -> None:
    """Refuse METADATA the result record could not hold: unknown keys, values JSON cannot hold, types other
    than the result schema's ``method`` part, a malformed ``not_applicable``."""
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise HfusError(f"{source}: unknown METADATA keys {unknown}; allowed: {', '.join(METADATA_KEYS)}")
    for key, value in metadata.items():
        try:
            json.dumps(plain_json(value), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise HfusError(
                f"METADATA in {source}: {key!r} must be JSON data (str, int, float, bool, None, lists, dicts "
                f"with str keys; no NaN): {err}"
            ) from err
    record_part = {k: v for k, v in metadata.items() if k != "not_applicable"}
    check_schema(plain_json(record_part), _metadata_schema(), f"METADATA in {source}")
    na = metadata.get("not_applicable")
    if na is not None and not (
        isinstance(na, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in na.items())
    ):
        raise HfusError(
            f"{source}: METADATA['not_applicable'] must map an architecture name to the reason, "
            "e.g. {'mobilenet_v2': 'ReLU6 is not a ReLU module'}"
        )


def _check_name(name: Any, source: str) -> None:
    """A method's name must be safe as a file name (:data:`NAME_PATTERN`)."""
    if not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
        raise HfusError(
            f"{source}: method name {name!r} (METADATA['name'], else the file name) is not a safe file name: "
            f"use only {NAME_RULE}"
        )


def _metadata_of(namespace: Any, source: str) -> dict[str, Any]:
    """The namespace's METADATA dict (none: empty); HfusError when it is something else."""
    metadata = getattr(namespace, "METADATA", None)
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise HfusError(
            f"METADATA in {source} must be a dict, e.g. {{'name': 'my-method', 'kind': 'map'}}; "
            f"got {type(metadata).__name__} {metadata!r:.60}"
        )
    return dict(metadata)


def _from_namespace(name: str, source: str, namespace: Any, file: Path | None) -> Method:
    metadata = _metadata_of(namespace, source)
    reserved = sorted(set(metadata) & set(RESERVED_KEYS))
    if reserved:
        raise HfusError(
            f"{source}: METADATA {reserved} is reserved for the benchmark's reference rows (a method may not "
            "read the evidence masks); remove it"
        )
    _check_metadata(metadata, source)
    cls = getattr(namespace, "Explainer", None)
    fn = getattr(namespace, "explain", None)
    unused = None
    if cls is not None and inspect.isclass(cls):
        kind = metadata.get("kind", getattr(cls, "kind", "map"))
        factory = cls
        unused = "explain" if callable(fn) else None
    elif callable(fn):
        kind = metadata.get("kind", getattr(fn, "kind", "map"))

        def factory(model: nn.Module, context: ExplainContext) -> Callable:
            return lambda images, targets: fn(model, images, targets, context=context)

    else:
        raise HfusError(
            f"{source} defines neither a function `explain(model, images, targets, *, context)` nor a class "
            "`Explainer`; see examples/ for both forms"
        )
    if kind not in ("map", "attribution"):
        raise HfusError(f"{source}: kind must be 'map' or 'attribution', got {kind!r}")
    name = metadata.get("name", name)
    _check_name(name, source)
    if name in BUILTINS:  # its results and its leaderboard entry would replace the built-in's
        raise HfusError(
            f"{source}: method name {name!r} is a built-in method's; give yours another name "
            "(METADATA['name'], else the file name)"
        )
    return Method(
        name=name,
        source=source,
        kind=kind,
        factory=factory,
        metadata=metadata,
        file=file,
        unused=unused,
    )


def load_file(path: str | Path) -> Method:
    """Import a user's method file (a fresh module each time)."""
    file = Path(path)
    if not file.is_file():
        raise HfusError(f"method file not found: {file}")
    if file.suffix != ".py":
        raise HfusError(f"method file must be a .py file: {file}")
    module_name = f"hfus_user_method_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise HfusError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise HfusError(f"syntax error in {file.name}:{err.lineno}: {err.msg}") from err
    except METHOD_ERRORS as err:
        raise HfusError(f"importing {file.name} failed: {describe_error(err, file)}") from err
    finally:
        sys.modules.pop(module_name, None)
    method = _from_namespace(file.stem, f"file:{file}", module, file)
    method.sha256 = sha256_file(file)
    return method


def load_builtin(name: str) -> Method:
    """A built-in method by its CLI name; METADATA = its family's shared keys, then the class's own."""
    entry = BUILTINS[name]
    module_name, _, attr = entry.target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    metadata = {"name": name, "kind": getattr(cls, "kind", "map"), **FAMILY_METADATA.get(entry.family, {})}
    metadata.update(getattr(cls, "METADATA", {}) or {})
    _check_metadata({k: v for k, v in metadata.items() if k not in RESERVED_KEYS}, f"built-in {name}")
    return Method(name=name, source="builtin", kind=metadata["kind"], factory=cls, metadata=metadata)


def _entry_point(name: str) -> Method | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                obj = ep.load()
            except METHOD_ERRORS as err:
                raise HfusError(
                    f"entry point {name!r} ({ep.value}) failed to load: {describe_error(err, None)}"
                ) from err
            return _from_namespace(name, f"entry_point:{name}", obj, None)
    return None


def load_method(spec: str | Path) -> Method:
    """Resolve a method: a path to a ``.py`` file, a built-in name, or an entry-point name."""
    text = str(spec)
    if text.endswith(".py") or Path(text).is_file():
        return load_file(text)
    if text in BUILTIN_METHODS:
        return load_builtin(text)
    method = _entry_point(text)
    if method is not None:
        return method
    names = ", ".join(sorted(BUILTIN_METHODS))
    raise HfusError(
        f"unknown method {text!r}: give a .py file, a built-in name ({names}) or an installed entry point"
    )


def available_methods() -> dict[str, str]:
    """All method names this installation knows: built-ins and entry points."""
    found = {name: "builtin" for name in BUILTIN_METHODS}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, f"entry point {ep.value}")
    return found


def applicable_archs(method: Method, archs: Sequence[str]) -> tuple[str, ...]:
    """The architectures of ``archs`` (``RunConfig.models``) the method is defined on, in order (PROTOCOL §5:
    the others are skipped, shown as n/a); HfusError when it is defined on none of them."""
    kept = tuple(a for a in archs if method.applicable(a))
    if not kept:
        reasons = "; ".join(f"{a}: {method.not_applicable(a)}" for a in archs)
        raise HfusError(
            f"method {method.name!r} is undefined (n/a) on every architecture asked for ({reasons}); "
            "pick others with --models"
        )
    return kept
