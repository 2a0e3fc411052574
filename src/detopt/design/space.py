"""The design space: the ordered set of parameters that describe a detector.

A :class:`DesignSpace` is immutable. It knows the current design (values and
category probabilities), encodes designs as vectors for the networks, samples
designs around the current one (AIDO paper, section 4.1) and reads/writes
itself as JSON or YAML.

Vector encoding (AIDO paper, section 5): the continuous values in declaration
order, then for each discrete parameter one entry per category -- one-hot for a
concrete (sampled) design, the probabilities P = softmax(z) for the current one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detopt.atomic import write_text_atomic
from detopt.design._errors import FieldValueError, config_error_from_validation
from detopt.design.parameters import ContinuousParameter, DiscreteParameter
from detopt.design.sampling import DEFAULT_MAX_REDRAW_ROUNDS, sample_truncated_normal, validate_covariance
from detopt.errors import ConfigError

__all__ = [
    "DESIGN_FORMAT_VERSION",
    "Design",
    "DesignSpace",
    "Parameter",
]

DESIGN_FORMAT_VERSION = 1
"""Version of the design file format written by :meth:`DesignSpace.to_dict`."""

Parameter: TypeAlias = Annotated[ContinuousParameter | DiscreteParameter, Field(discriminator="type")]
"""Either kind of parameter, told apart by its ``type`` key."""

Design: TypeAlias = dict[str, float | str]
"""One concrete design: parameter name -> value (continuous) or category (discrete)."""

_TAG_MODELS: dict[str, type[BaseModel]] = {"continuous": ContinuousParameter, "discrete": DiscreteParameter}
_FILE_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def read_design_text(path: Path) -> tuple[str, str]:
    """The text of a design file and its format ("json" or "yaml", from the suffix); clear errors naming it."""
    if path.is_dir():
        raise ConfigError(str(path), "is a directory, not a design file (.yaml, .yml or .json)")
    kind = _FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(str(path), f"unknown design file suffix {path.suffix!r}; use .json, .yaml or .yml")
    try:
        return path.read_text(encoding="utf-8"), kind
    except FileNotFoundError:
        raise ConfigError(str(path), "design file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read design file: {exc}") from None
_DEFAULT_IGNORED_KEYS = ("detector",)


def _infer_type(entry: Any) -> Any:
    """Fill in ``type`` of a raw parameter entry when it is evident (``categories`` -> discrete, ``value`` -> continuous)."""
    if isinstance(entry, Mapping):
        odd = [key for key in entry if not isinstance(key, str)]
        if odd:  # e.g. YAML `- &anchor: x` gives a null key
            raise ValueError(f"parameter keys must be names (text), got {odd[0]!r}")
    if isinstance(entry, Mapping) and "type" not in entry:
        if "categories" in entry:
            return {"type": "discrete", **entry}
        if "value" in entry:
            return {"type": "continuous", **entry}
    return entry


class DesignSpace(BaseModel):
    """Ordered, uniquely named continuous and discrete parameters of a detector design.

    Build it from parameters (``DesignSpace(parameters=[...])``), a mapping
    (:meth:`from_dict`, :meth:`from_mapping`), text (:meth:`from_json`,
    :meth:`from_yaml`) or a file (:meth:`load`). Every validation failure
    raises :class:`detopt.errors.ConfigError` naming the parameter, e.g.
    ``parameters[absorber_0_thickness].value``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = DESIGN_FORMAT_VERSION
    parameters: tuple[Parameter, ...]

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error_from_validation(
                exc, data, root="", root_model=DesignSpace, tag_models=_TAG_MODELS
            ) from None

    @field_validator("parameters", mode="before")
    @classmethod
    def _infer_types(cls, entries: Any) -> Any:
        if isinstance(entries, Sequence) and not isinstance(entries, str | bytes):
            return [_infer_type(entry) for entry in entries]
        raise ValueError(f"must be a list of parameters, got {type(entries).__name__}")

    @field_validator("version", mode="before")
    @classmethod
    def _known_version(cls, version: Any) -> Any:
        if version != DESIGN_FORMAT_VERSION:
            raise ValueError(
                f"unsupported design format version {version!r}; this detopt reads version {DESIGN_FORMAT_VERSION}"
            )
        return version

    @model_validator(mode="after")
    def _unique_names(self) -> DesignSpace:
        if not self.parameters:
            raise FieldValueError("parameters", "a design space needs at least one parameter")
        seen: set[str] = set()
        for parameter in self.parameters:
            if parameter.name in seen:
                raise FieldValueError(
                    f"parameters[{parameter.name}]",
                    f"duplicate parameter name {parameter.name!r}; names must be unique",
                )
            seen.add(parameter.name)
        return self

    # ------------------------------------------------------------------ access

    @property
    def names(self) -> tuple[str, ...]:
        """All parameter names, in declaration order."""
        return tuple(p.name for p in self.parameters)

    @property
    def continuous(self) -> tuple[ContinuousParameter, ...]:
        """The continuous parameters, in declaration order."""
        return tuple(p for p in self.parameters if isinstance(p, ContinuousParameter))

    @property
    def discrete(self) -> tuple[DiscreteParameter, ...]:
        """The discrete parameters, in declaration order."""
        return tuple(p for p in self.parameters if isinstance(p, DiscreteParameter))

    @property
    def optimizable_continuous(self) -> tuple[ContinuousParameter, ...]:
        """The continuous parameters with ``optimizable=True``: the rows/columns of the covariance K."""
        return tuple(p for p in self.continuous if p.optimizable)

    def __getitem__(self, name: str) -> ContinuousParameter | DiscreteParameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(f"no parameter named {name!r}; known: {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.parameters)

    # ----------------------------------------------------------------- current

    def current_design(self) -> Design:
        """The current design: every continuous value, and the most probable category of every discrete parameter."""
        return {
            p.name: (p.value if isinstance(p, ContinuousParameter) else p.most_probable) for p in self.parameters
        }

    def covariance(self) -> np.ndarray:
        """Default sampling covariance K = diag(sigma^2) over :attr:`optimizable_continuous` (AIDO section 4.1)."""
        return np.diag(np.array([p.sigma for p in self.optimizable_continuous], dtype=np.float64) ** 2)

    # ---------------------------------------------------------------- encoding

    @property
    def encoding_names(self) -> tuple[str, ...]:
        """Names of the encoding entries: continuous names, then ``name=category`` for each category."""
        return tuple(p.name for p in self.continuous) + tuple(
            f"{p.name}={c}" for p in self.discrete for c in p.categories
        )

    @property
    def encoding_size(self) -> int:
        """Length of the encoding vector."""
        return len(self.continuous) + sum(len(p.categories) for p in self.discrete)

    def encoding_slices(self) -> dict[str, slice]:
        """Where each parameter sits in the encoding vector (one entry per continuous parameter)."""
        slices: dict[str, slice] = {}
        for i, p in enumerate(self.continuous):
            slices[p.name] = slice(i, i + 1)
        start = len(self.continuous)
        for p in self.discrete:
            slices[p.name] = slice(start, start + len(p.categories))
            start += len(p.categories)
        return {name: slices[name] for name in self.names}

    def current_encoding(self) -> np.ndarray:
        """Encoding of the current design: continuous values, then the probabilities; shape (encoding_size,)."""
        values = [p.value for p in self.continuous]
        probabilities = [q for p in self.discrete for q in p.probabilities]
        return np.array(values + probabilities, dtype=np.float64)

    def encode(self, designs: Sequence[Mapping[str, float | str]]) -> np.ndarray:
        """Encode concrete designs: continuous values, then one-hot per discrete parameter; shape (n, encoding_size).

        Every design must give every parameter (a finite number for a continuous
        one, one of its categories for a discrete one) and nothing else. Values
        are not checked against the bounds.
        """
        if isinstance(designs, Mapping) or not isinstance(designs, Iterable):
            raise ConfigError("designs", "expected a sequence of designs (wrap a single design in a list)")
        designs = list(designs)
        self._check_design_keys(designs)
        out = np.zeros((len(designs), self.encoding_size), dtype=np.float64)
        for column, p in enumerate(self.continuous):
            for row, design in enumerate(designs):
                out[row, column] = self._finite_value(design[p.name], f"designs[{row}].{p.name}")
        start = len(self.continuous)
        for p in self.discrete:
            lookup = {c: i for i, c in enumerate(p.categories)}
            for row, design in enumerate(designs):
                category = design[p.name]
                if not isinstance(category, str) or category not in lookup:
                    raise ConfigError(
                        f"designs[{row}].{p.name}",
                        f"must be one of the categories {', '.join(p.categories)}, got {category!r}",
                    )
                out[row, start + lookup[category]] = 1.0
            start += len(p.categories)
        return out

    def decode_vector(self, vector: Sequence[float] | np.ndarray) -> Design:
        """Concrete design of an encoding vector: continuous values, and the category with the largest entry."""
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (self.encoding_size,):
            raise ConfigError("vector", f"must have shape ({self.encoding_size},), got {v.shape}")
        slices = self.encoding_slices()
        design: Design = {}
        for p in self.parameters:
            part = v[slices[p.name]]
            design[p.name] = float(part[0]) if isinstance(p, ContinuousParameter) else p.categories[int(np.argmax(part))]
        return design

    def _check_design_keys(self, designs: list[Any]) -> None:
        expected = set(self.names)
        for row, design in enumerate(designs):
            if not isinstance(design, Mapping):
                raise ConfigError(f"designs[{row}]", f"must map parameter names to values, got {type(design).__name__}")
            missing = [n for n in self.names if n not in design]
            if missing:
                raise ConfigError(f"designs[{row}]", f"missing parameters: {', '.join(missing)}")
            unknown = sorted(str(k) for k in design if k not in expected)
            if unknown:
                raise ConfigError(
                    f"designs[{row}]", f"unknown parameters: {', '.join(unknown)}; known: {', '.join(self.names)}"
                )

    @staticmethod
    def _finite_value(value: Any, field: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(field, f"must be a finite number, got {value!r}") from None
        if isinstance(value, str | bytes) or not math.isfinite(number):
            raise ConfigError(field, f"must be a finite number, got {value!r}")
        return number

    # ---------------------------------------------------------------- sampling

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        covariance: np.ndarray | None = None,
        include_current: bool = True,
        *,
        max_rounds: int = DEFAULT_MAX_REDRAW_ROUNDS,
        sampling_floor: float = 0.0,
    ) -> list[Design]:
        """Draw ``n`` designs around the current one (AIDO section 4.1).

        Optimizable continuous parameters come from N(theta, K), with
        K = ``covariance`` (rows/columns: :attr:`optimizable_continuous` in
        declaration order; default diag(sigma^2)); a draw with any value outside
        the bounds is redrawn. Optimizable discrete parameters are drawn from
        their probabilities. Fixed parameters keep their value (discrete: the
        most probable category). ``sampling_floor`` > 0 draws categories from P mixed with the
        uniform distribution so that each has at least that probability
        (:func:`detopt.optimize.discrete.floored_probabilities`). With ``include_current`` the first design is
        :meth:`current_design` and ``n - 1`` are drawn.

        Raises ConfigError for n < 1, a bad covariance, or draws that stay out of
        bounds after ``max_rounds`` vectorized redraw rounds.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError("n", f"number of designs must be an integer >= 1, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise ConfigError("rng", f"must be a numpy.random.Generator, got {type(rng).__name__}")
        optimizable = self.optimizable_continuous
        names = [p.name for p in optimizable]
        cov = self.covariance() if covariance is None else validate_covariance(covariance, names)
        n = int(n)
        n_draw = n - 1 if include_current else n

        drawn = sample_truncated_normal(
            np.array([p.value for p in optimizable]),
            cov,
            np.array([p.bounds[0] for p in optimizable]),
            np.array([p.bounds[1] for p in optimizable]),
            n_draw,
            rng,
            names=names,
            max_rounds=max_rounds,
        )
        columns: dict[str, list[float] | list[str]] = {
            p.name: drawn[:, i].tolist() for i, p in enumerate(optimizable)
        }
        for p in self.discrete:
            if p.optimizable and n_draw > 0:
                probabilities = np.asarray(p.probabilities)
                if sampling_floor > 0:
                    from detopt.optimize.discrete import floored_probabilities

                    probabilities = floored_probabilities(probabilities, sampling_floor)
                picks = rng.choice(len(p.categories), size=n_draw, p=probabilities / probabilities.sum())
                columns[p.name] = [p.categories[i] for i in picks]

        current = self.current_design()
        designs = [current] if include_current else []
        for row in range(n_draw):
            designs.append(
                {name: (columns[name][row] if name in columns else current[name]) for name in self.names}
            )
        return designs

    # ----------------------------------------------------------------- updates

    def with_values(
        self,
        values: Mapping[str, float] | None = None,
        probabilities: Mapping[str, Sequence[float]] | None = None,
        *,
        clip: bool = False,
    ) -> DesignSpace:
        """A validated copy with new continuous ``values`` and/or discrete ``probabilities`` (by name).

        With ``clip`` values outside the bounds are moved onto the nearest bound
        instead of raising. Probabilities must sum to 1 within 1e-6 (pass
        float64, e.g. softmax of float64 logits).
        """
        values = dict(values or {})
        probabilities = dict(probabilities or {})
        by_name = {p.name: p for p in self.parameters}
        for name in values:
            if not isinstance(by_name.get(name), ContinuousParameter):
                known = ", ".join(p.name for p in self.continuous) or "none"
                raise ConfigError(f"values[{name}]", f"not a continuous parameter of this design; known: {known}")
        for name in probabilities:
            if not isinstance(by_name.get(name), DiscreteParameter):
                known = ", ".join(p.name for p in self.discrete) or "none"
                raise ConfigError(f"probabilities[{name}]", f"not a discrete parameter of this design; known: {known}")

        entries: list[dict[str, Any]] = []
        for p in self.parameters:
            entry = p.model_dump()
            if p.name in values:
                value = self._finite_value(values[p.name], f"parameters[{p.name}].value")
                if clip and isinstance(p, ContinuousParameter):
                    value = min(max(value, p.bounds[0]), p.bounds[1])
                entry["value"] = value
            if p.name in probabilities:
                try:
                    entry["probabilities"] = np.asarray(probabilities[p.name], dtype=np.float64).ravel().tolist()
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"parameters[{p.name}].probabilities",
                        f"must be a sequence of numbers, got {probabilities[p.name]!r}",
                    ) from None
            entries.append(entry)
        return DesignSpace(version=self.version, parameters=entries)

    # ----------------------------------------------------------- serialization

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready mapping ``{"version": 1, "parameters": [...]}``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DesignSpace:
        """Validate a mapping with exactly the keys of :meth:`to_dict` (``version`` optional)."""
        return cls.from_mapping(data, ignore=())

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, ignore: Sequence[str] = _DEFAULT_IGNORED_KEYS, source: str | None = None
    ) -> DesignSpace:
        """Build from a design-file mapping: ``parameters`` (and optional ``version``) are read.

        Top-level keys in ``ignore`` (by default ``detector``, read by
        :mod:`detopt.detector`) are skipped; any other key is an error that
        names it. ``source`` (e.g. a file name) is added to error messages.
        """
        where = f" (in {source})" if source else ""
        if not isinstance(data, Mapping):
            raise ConfigError(
                source or "design", f"must be a mapping with a 'parameters' list, got {type(data).__name__}{where}"
            )
        known = ("version", "parameters")
        unknown = [str(k) for k in data if k not in known and k not in ignore]
        if unknown:
            allowed = ", ".join((*known, *ignore))
            raise ConfigError(
                unknown[0],
                f"unknown top-level key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"allowed: {allowed}{where}",
            )
        if "parameters" not in data:
            raise ConfigError("parameters", f"required key is missing{where}")
        try:
            return cls(**{k: data[k] for k in known if k in data})
        except ConfigError as exc:
            if not source:
                raise
            raise ConfigError(exc.field, f"{exc.message}{where}") from None

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str | None = None) -> DesignSpace:
        """Parse JSON text (see :meth:`from_mapping`); malformed JSON raises ConfigError naming ``source``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(source or "json", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_mapping(data, source=source)

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict` (block style, flow-style leaf lists)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> DesignSpace:
        """Parse YAML text (see :meth:`from_mapping`); malformed YAML raises ConfigError naming ``source``."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(source or "yaml", f"malformed YAML: {problem}{at}") from None
        return cls.from_mapping(data, source=source)

    def save(self, path: str | Path) -> None:
        """Write atomically as JSON (``.json``) or YAML (``.yaml``/``.yml``), chosen by the suffix."""
        path = Path(path)
        kind = _FILE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ConfigError(str(path), f"unknown design file suffix {path.suffix!r}; use .json, .yaml or .yml")
        write_text_atomic(path, self.to_json() if kind == "json" else self.to_yaml())

    @classmethod
    def load(cls, path: str | Path) -> DesignSpace:
        """Read a design file (.json, .yaml, .yml); a ``detector`` top-level key is allowed and ignored here."""
        path = Path(path)
        text, kind = read_design_text(path)
        if kind == "json":
            return cls.from_json(text, source=str(path))
        return cls.from_yaml(text, source=str(path))
