"""Find a method by name, file or entry point, and turn its output into checked saliency maps."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import HfusError
from .contract import ExplainContext, MapKind
from .registry import BUILTIN_METHODS

ENTRY_POINT_GROUP = "hfus_xai_bench.explainers"
METADATA_KEYS = ("name", "authors", "url", "licence", "hyperparameters", "tuning_split", "kind", "citation")


@dataclass
class Method:
    """A loaded method: how to build a per-model callable, and what it declares about itself."""

    name: str
    source: str  # "builtin", "file:<path>", "entry_point:<name>"
    kind: MapKind
    factory: Callable[[nn.Module, ExplainContext], Callable[[torch.Tensor, torch.Tensor], Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None

    def build(self, model: nn.Module, context: ExplainContext) -> Callable[[torch.Tensor, torch.Tensor], Any]:
        """The per-model callable ``(images, targets) -> raw output``."""
        try:
            return self.factory(model, context)
        except HfusError:
            raise
        except Exception as err:
            raise HfusError(f"method {self.name!r} failed to initialise: {_describe(err, self.file)}") from err


def _describe(err: BaseException, file: Path | None) -> str:
    """``ErrorType: message`` plus the line of the user's file where it happened, if any."""
    where = ""
    if file is not None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == file.resolve()]
        if frames:
            where = f" (at {file.name}:{frames[-1].lineno})"
    return f"{type(err).__name__}: {err}{where}"


def _from_namespace(name: str, source: str, namespace: Any, file: Path | None) -> Method:
    metadata = dict(getattr(namespace, "METADATA", None) or {})
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise HfusError(f"{source}: unknown METADATA keys {unknown}; allowed: {', '.join(METADATA_KEYS)}")
    cls = getattr(namespace, "Explainer", None)
    fn = getattr(namespace, "explain", None)
    if cls is not None and inspect.isclass(cls):
        kind = metadata.get("kind", getattr(cls, "kind", "map"))
        factory = cls
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
    return Method(name=metadata.get("name", name), source=source, kind=kind, factory=factory, metadata=metadata, file=file)


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
    except Exception as err:
        raise HfusError(f"importing {file.name} failed: {_describe(err, file)}") from err
    finally:
        sys.modules.pop(module_name, None)
    return _from_namespace(file.stem, f"file:{file}", module, file)


def load_builtin(name: str) -> Method:
    """A built-in method by its CLI name."""
    target = BUILTIN_METHODS[name]
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    metadata = {"name": name, "kind": getattr(cls, "kind", "map")}
    metadata.update(getattr(cls, "METADATA", {}) or {})
    return Method(name=name, source="builtin", kind=metadata["kind"], factory=cls, metadata=metadata)


def _entry_point(name: str) -> Method | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                obj = ep.load()
            except Exception as err:
                raise HfusError(f"entry point {name!r} ({ep.value}) failed to load: {_describe(err, None)}") from err
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
    raise HfusError(f"unknown method {text!r}: give a .py file, a built-in name ({names}) or an installed entry point")


def available_methods() -> dict[str, str]:
    """All method names this installation knows: built-ins and entry points."""
    found = {name: "builtin" for name in BUILTIN_METHODS}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, f"entry point {ep.value}")
    return found


def as_tensor(output: Any, device: torch.device) -> torch.Tensor:
    """A method's output as a float32 tensor on ``device``; HfusError for a wrong type."""
    if isinstance(output, torch.Tensor):
        tensor = output
    elif isinstance(output, np.ndarray):
        if not (np.issubdtype(output.dtype, np.floating) or np.issubdtype(output.dtype, np.integer)):
            raise HfusError(f"maps must be real numbers, got a numpy array of dtype {output.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(output))
    else:
        raise HfusError(f"maps must be a torch.Tensor or numpy.ndarray, got {type(output).__name__}")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise HfusError(f"maps must be real numbers, got dtype {tensor.dtype}")
    return tensor.detach().to(device=device, dtype=torch.float32)


def check_shape(maps: torch.Tensor, batch: int, kind: MapKind) -> None:
    """Raise HfusError unless ``maps`` has one map per image: (B, h, w), or (B, C, h, w) for attributions."""
    ok = maps.ndim == 3 or (maps.ndim == 4 and (kind == "attribution" or maps.shape[1] == 1))
    if not ok or maps.shape[0] != batch or min(maps.shape[-2:]) < 1:
        want = "(B, 224, 224) or (B, h, w)" + (" or (B, C, H, W)" if kind == "attribution" else "")
        raise HfusError(f"wrong map shape {tuple(maps.shape)} for a batch of {batch}: expected {want}")
