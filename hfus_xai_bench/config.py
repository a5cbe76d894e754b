"""One configuration object for a run: what ``hfus-bench evaluate`` / ``submit`` / ``verify --rerun`` do.

The CLI builds a :class:`RunConfig` from its flags, the Python API from keyword arguments
(``RunConfig.build(models="all", folds="0,1", limit=8)``), ``verify --rerun`` from a result record
(:meth:`RunConfig.from_record`). The record serialises it: ``record["options"]`` (:meth:`to_options`,
with the device and batch size as resolved on the machine) and ``record["dataset"]`` (id, revision).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from .constants import ARCH_NAMES, DEFAULT_ARCH, NUM_FOLDS, RANDOMISATION_COPIES, SYNTH_DATASET, arch_name
from .errors import HfusError

if TYPE_CHECKING:
    import torch

TARGETS = ("pred", "label")
SIGNS = ("pos", "abs", "neg")
CONFIDENCE_UNITS = ("logit", "prob")
#: Precisions of a run: ``bf16`` runs the model passes under autocast, everything after them in float32
#: (``calls.set_precision``).
PRECISIONS = ("fp32", "bf16")
#: The precision of the leaderboard's tables and of submissions.
LEADERBOARD_PRECISION = "fp32"
#: Images per explainer call when ``batch_size`` is not given.
DEFAULT_BATCH_SIZE = {"cpu": 16, "cuda": 64}


def require_leaderboard_precision(precision: str, what: str) -> None:
    """HfusError unless ``precision`` is the leaderboard's (``what``: the record or run it names)."""
    if precision != LEADERBOARD_PRECISION:
        raise HfusError(
            f"{what} was run with --precision {precision}; the leaderboard is {LEADERBOARD_PRECISION}: "
            "rerun without --precision"
        )


def check_limit(limit: int | None) -> None:
    """``--limit N`` (every command: only the first N images) must be None (all) or at least 1."""
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise HfusError(f"--limit must be at least 1, got {limit}")


def parse_list(value: str | Sequence[Any] | None, all_values: Sequence[Any]) -> list[str]:
    """Comma-separated text or a sequence → list of strings; ``"all"`` → ``all_values``."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items if str(v).strip()]
    if items == ["all"]:
        return [str(v) for v in all_values]
    return items


def parse_known(value: str | Sequence[Any] | None, known: Sequence[Any], what: str) -> list[str]:
    """:func:`parse_list` whose items must all be in ``known``; HfusError naming the unknown ones."""
    names = parse_list(value, known)
    unknown = [n for n in names if n not in {str(k) for k in known}]
    if unknown:
        raise HfusError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(map(str, known))})")
    return names


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise HfusError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides the numbers of a run (and where it runs).

    ``models``: architecture names (``ARCH_NAMES``); ``folds``: test folds; ``limit``: only the first N
    test images of each fold (None = all); ``target``: explain the predicted class or the label;
    ``sign``: sign policy for signed attributions; ``confidence``: unit of DiC/IiC; ``device``: ``auto``
    (CUDA when available), ``cpu`` or ``cuda[:N]``; ``batch_size``: images per explainer call (None =
    16 on CPU, 64 on GPU); ``seed``: the run seed; ``precision``: ``fp32``, or ``bf16`` (model passes under
    autocast, maps and metrics in float32; not for the leaderboard); ``dataset`` + ``revision``;
    ``randomisations``: K, the randomised copies of PROTOCOL §7.1.1 (only K = RANDOMISATION_COPIES rows are
    ranked).
    """

    models: tuple[str, ...] = (DEFAULT_ARCH,)
    folds: tuple[int, ...] = (0,)
    limit: int | None = None
    target: str = "pred"
    sign: str = "pos"
    confidence: str = "logit"
    device: str = "auto"
    batch_size: int | None = None
    seed: int = 0
    precision: str = "fp32"
    dataset: str = SYNTH_DATASET
    revision: str | None = None
    randomisations: int = RANDOMISATION_COPIES

    def __post_init__(self) -> None:
        models = tuple(arch_name(a) for a in parse_list(self.models, ARCH_NAMES))
        try:
            folds = tuple(int(f) for f in parse_list(self.folds, range(NUM_FOLDS)))
        except ValueError as err:
            raise HfusError(
                f"--folds must be fold numbers 0..{NUM_FOLDS - 1} or 'all', got {self.folds!r}"
            ) from err
        if not models or not folds:
            raise HfusError("nothing to evaluate: give at least one model and one fold")
        bad = [f for f in folds if not 0 <= f < NUM_FOLDS]
        if bad:
            raise HfusError(f"folds must be in 0..{NUM_FOLDS - 1}, got {bad}")
        if len(set(models)) != len(models) or len(set(folds)) != len(folds):
            raise HfusError(
                f"--models and --folds must not repeat a value, got {list(models)} and {list(folds)}"
            )
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "folds", folds)
        check_limit(self.limit)
        if isinstance(self.randomisations, bool) or int(self.randomisations) < 1:
            raise HfusError(f"--randomisations must be at least 1, got {self.randomisations}")
        object.__setattr__(self, "randomisations", int(self.randomisations))
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise HfusError(f"--batch-size must be at least 1, got {self.batch_size}")
        _choice("target", self.target, TARGETS)
        _choice("sign", self.sign, SIGNS)
        _choice("confidence", self.confidence, CONFIDENCE_UNITS)
        _choice("precision", self.precision, PRECISIONS)
        if not str(self.device):
            raise HfusError("--device must be auto, cpu or cuda[:N]")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "device", str(self.device))
        object.__setattr__(self, "dataset", str(self.dataset))

    @classmethod
    def build(cls, **options: Any) -> RunConfig:
        """A config from keyword arguments; unknown names are an error (``models``/``folds`` take text or
        lists)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise HfusError(f"unknown run option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(
            **{k: v for k, v in options.items() if v is not None or k in ("limit", "batch_size", "revision")}
        )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def resolve_device(self) -> torch.device:
        from .runtime import resolve_device

        return resolve_device(self.device)

    def resolved_batch_size(self, device: torch.device) -> int:
        return int(self.batch_size or DEFAULT_BATCH_SIZE.get(device.type, DEFAULT_BATCH_SIZE["cpu"]))

    def to_options(self, device: torch.device) -> dict[str, Any]:
        """``record["options"]``: the config as run here (device and batch size resolved)."""
        return {
            "models": list(self.models),
            "folds": list(self.folds),
            "limit": self.limit,
            "target": self.target,
            "sign": self.sign,
            "confidence": self.confidence,
            "batch_size": self.resolved_batch_size(device),
            "seed": self.seed,
            "precision": self.precision,
            "device": str(device),
            "randomisations": self.randomisations,
        }

    def cli_args(self) -> list[str]:
        """The ``hfus-bench evaluate`` / ``submit`` flags that give this config (defaults left out)."""
        default = RunConfig()
        args = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            if f.name in ("models", "folds"):
                value = ",".join(map(str, value))
            args += [f"--{f.name.replace('_', '-')}", str(value)]
        return args

    @classmethod
    def from_record(cls, record: Mapping[str, Any], **changes: Any) -> RunConfig:
        """The config a result record was made with (``options`` + ``dataset``), with ``changes`` applied."""
        o = record["options"]
        base = {
            "models": o["models"],
            "folds": o["folds"],
            "limit": o["limit"],
            "target": o["target"],
            "sign": o["sign"],
            "confidence": o["confidence"],
            "batch_size": o.get("batch_size"),
            "seed": o["seed"],
            "precision": o.get("precision", "fp32"),
            # records made before PROTOCOL §7.1.1 had one randomised copy
            "randomisations": o.get("randomisations", 1),
            "dataset": record["dataset"]["id"],
            "revision": record["dataset"].get("revision"),
        }
        return cls(**{**base, **changes})
