"""The run configuration: one YAML file -> a tree of typed dataclasses, validated once at the edge.

`load()` rejects unknown keys, wrong types and bad values with a `ConfigError` that names the dotted key
and what is allowed. Each area owns its section's dataclass (`tessera.<area>.config`); this module only
knows how to build dataclasses from mappings and how the sections fit together.

A section dataclass may define `check(self, where: str) -> None` to validate values beyond their types;
`from_dict` calls it after construction.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from tessera.errors import ConfigError
from tessera.names import check_name

__all__ = [
    "RunConfig", "RunSection", "SiteConfig", "load", "from_dict", "apply_overrides", "to_dict",
    "read_yaml_mapping",
]

T = TypeVar("T")

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    """Convert one YAML value to the annotated type `tp`, or raise a ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {args}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not allowed; allowed values: {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        item_types = args if args and args[-1] is not Ellipsis else (args[0],) * len(value)
        if len(item_types) != len(value):
            raise ConfigError(f"{key}: expected {len(item_types)} values, got {len(value)}")
        pairs = enumerate(zip(item_types, value, strict=True))
        return tuple(_convert(t, v, f"{key}[{i}]") for i, (t, v) in pairs)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return {k: _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if is_dataclass(tp):
        return from_dict(tp, value, key)
    return _convert_scalar(tp, value, key)


def _convert_scalar(tp: Any, value: Any, key: str) -> Any:
    """The leaves of `_convert`: bool, int, float, str and Path, each checked strictly."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # YAML 1.1 reads `3e-4` (no dot) as a string: accept numeric strings for floats.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        if not str(value).strip():  # Path("") is the working directory: never what an empty value means
            raise ConfigError(f"{key}: an empty path; give a folder or file (or null where a default exists)")
        return Path(value)
    raise TypeError(f"{key}: unsupported annotation {_type_name(tp)}")  # a bug in a config dataclass


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown and missing keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in known.items():
        key = f"{where}.{name}"
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{key}: required key is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(where)
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain YAML/JSON-serialisable data (paths as strings)."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value, e.g. train.lr=1e-3")
        dotted, raw = item.split("=", 1)
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML; quote it") from None
    return data


@dataclass
class RunSection:
    """Names the run; every output lands under `<results_dir>/<name>/`."""

    name: str
    """Run name, used as the output folder name."""
    seed: int = 1234
    """Seed for every random choice (splits, sampling, initialisation)."""
    results_dir: Path = Path("results")
    """Root folder of all runs' outputs."""

    def check(self, where: str) -> None:
        check_name(self.name, f"{where}.name")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"{where}.seed: {self.seed} must be in [0, 2**32), as numpy's seeds are")


@dataclass
class SiteConfig:
    """Where the run executes: decides grid carbon intensity, PUE and the GPU's peak figures."""

    name: str = "laptop"
    """Site name (e.g. leonardo, marenostrum5, laptop)."""
    country: str = "ITA"
    """ISO 3166-1 alpha-3 country code of the data centre (carbon intensity lookup)."""
    pue: float = 1.0
    """Power usage effectiveness of the data centre (facility energy / IT energy)."""
    gpu_type: str | None = None
    """Key into `energy.gpu_types` (peak FLOP/s and board power); null on CPU-only machines."""
    allocation_node_hours: float | None = None
    """The run's allocation, node-hours: `tessera budget`, the energy report and the workflow's onstart
    compare what was spent and what is left to train with it (null: no allocation to compare with)."""

    def check(self, where: str) -> None:
        if self.allocation_node_hours is not None and self.allocation_node_hours <= 0:
            raise ConfigError(
                f"{where}.allocation_node_hours: {self.allocation_node_hours} must be positive, or null"
            )
        if self.pue < 1.0:
            raise ConfigError(f"{where}.pue: {self.pue} is below 1.0; a PUE is facility/IT energy, >= 1")
        if len(self.country) != 3 or not self.country.isupper():
            raise ConfigError(
                f"{where}.country: {self.country!r} must be an ISO 3166-1 alpha-3 code like ITA"
            )


def _section_types() -> dict[str, type]:
    # Imported here so that `tessera.config` stays importable while an area is being built.
    from tessera.data.config import DataConfig
    from tessera.energy.config import EnergyConfig
    from tessera.eval.config import EvalConfig
    from tessera.model.config import ModelSection
    from tessera.release.config import ReleaseConfig
    from tessera.tokenizer.config import TokenizerConfig
    from tessera.train.config import TrainConfig

    return {
        "data": DataConfig,
        "tokenizer": TokenizerConfig,
        "model": ModelSection,
        "train": TrainConfig,
        "eval": EvalConfig,
        "energy": EnergyConfig,
        "release": ReleaseConfig,
    }


@dataclass
class RunConfig:
    """The whole run: one instance per `tessera` invocation, built by `load()`."""

    run: RunSection
    site: SiteConfig
    data: Any
    tokenizer: Any
    model: Any
    train: Any
    eval: Any
    energy: Any
    release: Any
    source: Path | None = field(default=None)
    """The YAML file this config came from (for error messages)."""

    @property
    def out_dir(self) -> Path:
        """`<results_dir>/<run name>`: the root of this run's outputs."""
        return self.run.results_dir / self.run.name

    def check(self) -> None:
        """Checks that span sections (e.g. each stage's mixture names languages the data provides)."""
        self.energy.check_site(self.site)  # the site's country and GPU type are in energy's tables
        languages = set(self.data.languages)
        weights = self.tokenizer.language_weights
        if weights and set(weights) != languages:
            raise ConfigError(
                f"tokenizer.language_weights: names {', '.join(sorted(weights))}, but the data languages are "
                f"{', '.join(sorted(languages))}; give one weight each, or leave it empty (auto)"
            )
        for stage in self.train.stages:
            missing = sorted(set(stage.mixture) - languages)
            if missing:
                raise ConfigError(
                    f"train.stages[{stage.name}].mixture: language(s) {', '.join(missing)} have no data "
                    f"source; languages with sources: {', '.join(sorted(languages))}"
                )


def from_mapping(raw: dict, source: Path | None = None, label: str | None = None) -> RunConfig:
    """Build and validate a RunConfig from an already-parsed mapping (used by the Snakefile). Errors
    start with `label` (default: the source file, else "config")."""
    try:
        return _build(raw, source)
    except ConfigError as err:
        raise ConfigError(f"{label or source or 'config'}: {err}") from None


def _build(raw: dict, source: Path | None) -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level")
    sections = _section_types()
    allowed = ["run", "site", *sections]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if "run" not in raw:
        raise ConfigError("required key 'run' is missing")
    built = {
        "run": from_dict(RunSection, raw["run"], "run"),
        "site": from_dict(SiteConfig, raw.get("site"), "site"),
    }
    for name, cls in sections.items():
        built[name] = from_dict(cls, raw.get(name), name)
    cfg = RunConfig(**built, source=source)
    cfg.check()
    return cfg


def _deep_merge(base: dict, other: dict) -> dict:
    merged = dict(base)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml_mapping(path: Path) -> dict:
    """One config file's mapping, or a ConfigError naming the file (and the line of a syntax error)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read as a UTF-8 text file ({err}); give a YAML file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            f"{where}: not valid YAML ({problem}); fix the syntax at that line (quote values with ':' or '#')"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level is a {type(data).__name__}, not a mapping of sections (run:, data:, ...)"
        )
    return data


def load(paths: str | Path | list[Path], overrides: list[str] | None = None) -> RunConfig:
    """Read YAML config file(s), deep-merged in order (as Snakemake merges --configfile), apply dotted
    overrides, and validate the result into a RunConfig."""
    paths = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    raw: dict = {}
    for path in paths:
        raw = _deep_merge(raw, read_yaml_mapping(path))
    raw = apply_overrides(raw, overrides or [])
    return from_mapping(raw, paths[-1] if paths else None, label=" + ".join(map(str, paths)) or None)
