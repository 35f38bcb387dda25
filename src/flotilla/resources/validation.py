"""Validation seam: every object entering the API goes through `validate_object`.

Errors name the field path (``spec.placement.clusterAffinity.foo``) so a user can find
the line in their YAML. The models themselves live in `flotilla.resources.models`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidObject(ValueError):
    """One or more field errors; ``str()`` lists them all, one per line."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))
