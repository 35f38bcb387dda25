"""Shared inputs: YAML documents other people wrote, loaded from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SHARED_SAMPLES = Path("/work/shared/samples/karmada")
KARMADA_FILES = Path(__file__).parent / "karmada"


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_one(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc
