"""Shared inputs: YAML documents other people wrote, loaded from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: A collection of Karmada samples, vendored so that a clean clone (CI) has them; a test
#: checks the copy against the checksums recorded when it was taken (see ORIGIN.md there).
SHARED_SAMPLES = Path(__file__).parent / "shared-samples"
SHARED_SAMPLES_SUMS = SHARED_SAMPLES / "SHA256SUMS"
KARMADA_FILES = Path(__file__).parent / "karmada"


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_one(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc
