"""The one failure every patch engine raises: the patch cannot be applied to the object.

The API answers it as Kubernetes does: 422 Invalid for a patch that does not fit the
object (a JSON-patch path that does not exist, a failed ``test``), 400 for a patch that is
not a patch at all. Engines stay free of HTTP: the route maps the two.
"""

from __future__ import annotations


class PatchError(ValueError):
    """``malformed``: the patch document itself is wrong (400), else it does not apply
    to this object (422)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.malformed = malformed
