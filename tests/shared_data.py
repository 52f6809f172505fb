"""The data written by others that the tests read from ``../shared`` (never copied into the repo).

``../shared/realdata/`` holds real Keepa answers, deals, selections and costs;
``../shared/quota-header-samples/`` real quota headers of HTTP APIs. Both sit beside the
repository's root, in CI too. Where a folder is absent (a user's clone), the tests that need it
skip with a reason; under ``CI`` they fail instead, so that CI never passes without them.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = (REPO_ROOT / ".." / "shared").resolve()
REALDATA = SHARED / "realdata"
QUOTA_SAMPLES = SHARED / "quota-header-samples"


def _need(folder: Path) -> Path:
    """``folder`` when it exists; else skip the test (fail it under ``CI``)."""
    if folder.is_dir():
        return folder
    why = f"{folder} is absent (it lives beside the repository, never inside it)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must have it", pytrace=False)
    pytest.skip(why)


def realdata_dir() -> Path:
    """The real Keepa data folder (skips, or fails under ``CI``, when absent)."""
    return _need(REALDATA)


def quota_samples_dir() -> Path:
    """The real quota-header samples folder (skips, or fails under ``CI``, when absent)."""
    return _need(QUOTA_SAMPLES)


@cache
def _load(path: Path) -> Any:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as file:
            return json.load(file)
    return json.loads(path.read_text(encoding="utf-8"))


def realdata(name: str) -> Any:
    """The parsed JSON of ``realdata/NAME`` (``.json`` or ``.json.gz``); shared, do not mutate."""
    return _load(realdata_dir() / name)


def realdata_files(pattern: str) -> list[Path]:
    """The real data files matching a glob ``pattern``, sorted (skips when the folder is absent)."""
    return sorted(realdata_dir().glob(pattern))


def realdata_names(pattern: str) -> list[str]:
    """File names for ``pytest.mark.parametrize`` (collected without failing when absent)."""
    return sorted(path.name for path in REALDATA.glob(pattern)) if REALDATA.is_dir() else []


def quota_sample(name: str) -> str:
    """The text of ``quota-header-samples/NAME`` (skips, or fails under ``CI``, when absent)."""
    return (quota_samples_dir() / name).read_text(encoding="utf-8")


def quota_sections(name: str) -> dict[str, str]:
    """The ``### title`` sections of a quota sample file: title -> its text (comments kept)."""
    sections: dict[str, str] = {}
    title = ""
    for line in quota_sample(name).splitlines(keepends=True):
        if line.startswith("### "):
            title = line[4:].strip()
            sections[title] = ""
        elif title:
            sections[title] += line
    return sections


def sample_headers(text: str) -> list[tuple[str, str]]:
    """The ``name: value`` lines of a sample's text, in order (comments, JSON and status skipped)."""
    pairs = []
    for line in text.splitlines():
        if not line or line[0] in '#{}" \t' or line.startswith("HTTP/"):
            continue
        name, sep, value = line.partition(":")
        if sep and name and " " not in name:
            pairs.append((name, value.strip()))
    return pairs


def sample_status(text: str) -> int:
    """The status of a sample: its ``HTTP/1.1 NNN`` or ``status: NNN`` line, else 200."""
    for line in text.splitlines():
        if line.startswith("HTTP/"):
            return int(line.split()[1])
        if line.lower().startswith("status:"):
            return int(line.split(":", 1)[1].split()[0])
    return 200


def sample_json(text: str) -> Any:
    """The JSON object of a sample's text: from its first ``{`` line to its last ``}``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    end = max(i for i, line in enumerate(lines) if line.startswith("}"))
    return json.loads("\n".join(lines[start : end + 1]))
