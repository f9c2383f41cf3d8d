"""Access to the golden set: real TDengine 3.3.7 bytes with their expected decoded content."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def golden_dir() -> Path | None:
    configured = os.environ.get("TDSYNC_TESTDATA")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO.parent / "shared" / "testdata" / "tdengine-3.3.7")
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    return None


def golden_items() -> list[tuple[str, dict, bytes]]:
    """(name, metadata, bytes) of every item; empty when the set is not beside the repo."""
    root = golden_dir()
    if root is None:
        return []
    items = []
    for meta_path in sorted(root.glob("[0-9]*.json")):
        meta = json.loads(meta_path.read_text())
        items.append((meta_path.stem, meta, meta_path.with_suffix(".bin").read_bytes()))
    return items


def require_golden() -> Path:
    root = golden_dir()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("golden set missing: ../shared/testdata/tdengine-3.3.7 (or TDSYNC_TESTDATA)")
        pytest.skip("golden set not found beside the repository; set TDSYNC_TESTDATA")
    return root


ITEMS = golden_items()


def params(predicate) -> list:
    selected = [pytest.param(meta, data, id=name) for name, meta, data in ITEMS if predicate(meta)]
    return selected or [pytest.param(None, None, id="golden-set-missing")]
