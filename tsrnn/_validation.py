"""A small parameter validator with scikit-learn's wording.

scikit-learn's own machinery (``sklearn.utils._param_validation``) is private, so
tsrnn keeps this one: each estimator declares a table ``{name: constraint}`` and
calls :func:`validate_params` at the start of ``fit``.
"""

from __future__ import annotations

import numbers
from typing import Any


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter has a wrong value or type (catchable as either)."""


class Constraint:
    """A rule a parameter value must satisfy, with a description for messages."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def __str__(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class Options(Constraint):
    """One of a fixed set of values (strings usually)."""

    def __init__(self, *options):
        self.options = options

    def is_satisfied_by(self, value):
        return isinstance(value, (str, bool, type(None))) and value in self.options

    def __str__(self):
        return "a str among {" + ", ".join(repr(o) for o in self.options) + "}"


class Interval(Constraint):
    """A real or integral number in a range; ``None`` bounds are infinite."""

    def __init__(self, kind, low, high, closed="both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value):
        if isinstance(value, bool):
            return False
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                return False
        elif not isinstance(value, numbers.Real):
            return False
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left_closed)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not right_closed)):
            return False
        return value == value  # NaN fails

    def __str__(self):
        kind = "an int" if self.kind is int else "a float"
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{kind} in the range {left}{low}, {high}{right}"


class Boolean(Constraint):
    def is_satisfied_by(self, value):
        return isinstance(value, (bool,)) or type(value).__name__ == "bool_"

    def __str__(self):
        return "an instance of 'bool'"


class NoneValue(Constraint):
    def is_satisfied_by(self, value):
        return value is None

    def __str__(self):
        return "None"


class InstanceOf(Constraint):
    def __init__(self, *types, name=None):
        self.types = types
        self.name = name or " or ".join(repr(t.__name__) for t in types)

    def is_satisfied_by(self, value):
        return isinstance(value, self.types)

    def __str__(self):
        return f"an instance of {self.name}"


def validate_params(owner: str, params: dict, constraints: dict) -> None:
    """Raise :class:`InvalidParameterError` on the first bad parameter.

    The error is both a ``ValueError`` and a ``TypeError``, as scikit-learn's.

    Parameters
    ----------
    owner : str
        Class name used in the message.
    params : dict
        ``{name: value}``, typically ``estimator.get_params(deep=False)``.
    constraints : dict
        ``{name: [Constraint, ...]}``; a value must satisfy at least one.
    """
    for name, options in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any(c.is_satisfied_by(value) for c in options):
            continue
        described = [str(c) for c in options]
        expected = described[0] if len(described) == 1 else (
            ", ".join(described[:-1]) + " or " + described[-1])
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead."
        )
