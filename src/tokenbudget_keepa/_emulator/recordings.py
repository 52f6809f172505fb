"""Recorded Keepa answers the emulator can serve instead of its seeded data.

A folder of bodies captured from the real API (your own, or ``../shared/realdata``)
is read once, at construction; see :class:`Recordings` for the layout.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs


__all__ = ["Recordings"]

#: The envelope's fields (what a recorded body holds beside its payload).
_ENVELOPE = frozenset(
    {
        "timestamp",
        "tokensLeft",
        "refillIn",
        "refillRate",
        "tokenFlowReduction",
        "tokensConsumed",
        "processingTimeInMs",
    }
)


def _read(path: Path) -> Any:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as file:
                return json.load(file)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"recording {path} is not readable JSON: {exc}") from None


def _files(folder: Path, subfolder: str, prefix: str) -> Iterator[Path]:
    """``folder/subfolder/*.json`` and ``folder/prefix*.json`` (and ``.json.gz``), by name."""
    found: list[Path] = []
    for pattern in ("*.json", "*.json.gz"):
        found += (folder / subfolder).glob(pattern)
        found += folder.glob(f"{prefix}{pattern}")
    return iter(sorted(set(found)))


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(f"recording {path}: {what}")


def _bodies(value: Any, path: Path) -> list[Mapping[str, Any]]:
    """A recorded file holds one body or a list of bodies."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, Mapping):
            raise _bad(path, f"holds {type(item).__name__}, not a JSON object")
    return items


@attrs.frozen
class Recordings:
    """Recorded answers: deal pages in the order they were answered, products by ASIN.

    The layout of a recordings folder (each file JSON, or gzipped JSON with
    ``.json.gz``; a file may hold one body or a list of them):

    - ``deal/*.json`` or ``deal_page*.json``: whole ``/deal`` answers (the
      envelope with ``deals``). They are served one per ``/deal`` request, in the
      order of their ``timestamp`` (file name order where they have none),
      whatever the selection (which is still validated); after the last one,
      every ``/deal`` request gets an empty page. A body without ``deals`` (a
      recorded 429) is not a page: the emulator answers 429 from its own account.
    - ``product/*.json`` or ``product_*.json``: product objects (or whole
      ``/product`` answers: their ``products``), served by ASIN as recorded,
      whatever the request's parameters; ASINs without a recording are answered
      from the seeded catalog as usual.
    - ``token/*.json`` or ``token_*.json``: ``/token`` answers; the earliest one
      starts the account (its ``tokensLeft``, ``refillRate`` and
      ``tokenFlowReduction``) unless the emulator is told otherwise.

    The emulator keeps its own token accounting on its clock: a recorded page
    is charged its recorded ``tokensConsumed``, a recorded product by Keepa's
    rules (see :class:`~tokenbudget_keepa.testing.KeepaEmulator`), and the
    envelope of every answer is the emulator's.

    Attributes:
        deal_pages: The ``/deal`` answers, in the order they are served.
        products: Product objects by ASIN.
        token_bodies: The ``/token`` answers, earliest first.

    .. versionadded:: 0.1.0
    """

    deal_pages: tuple[Mapping[str, Any], ...] = ()
    products: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    token_bodies: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Recordings:  # noqa: C901
        """Read a recordings folder (see the class for its layout).

        Raises:
            ValueError: The folder does not exist, holds nothing to serve, or a
                file is not JSON objects of the expected kind (the error names it).
        """
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"recordings must be a folder, got {str(folder)!r}")
        pages: list[tuple[int, int, Mapping[str, Any]]] = []
        for number, path in enumerate(_files(root, "deal", "deal_page")):
            for body in _bodies(_read(path), path):
                if "deals" not in body:
                    continue  # a 429 or another error: not a page
                wrapper = body["deals"]
                if not (isinstance(wrapper, Mapping) and isinstance(wrapper.get("dr"), list)):
                    raise _bad(path, "'deals' has no 'dr' list of deals")
                stamp = body.get("timestamp")
                pages.append((stamp if isinstance(stamp, int) else 0, number, body))
        products: dict[str, Mapping[str, Any]] = {}
        for path in _files(root, "product", "product_"):
            for body in _bodies(_read(path), path):
                found = body.get("products", [body])
                if not isinstance(found, list):
                    raise _bad(path, "'products' is not a list")
                for product in found:
                    asin = product.get("asin") if isinstance(product, Mapping) else None
                    if not isinstance(asin, str):
                        raise _bad(path, "a product without an 'asin'")
                    products[asin.upper()] = product
        tokens: list[Mapping[str, Any]] = []
        for path in _files(root, "token", "token_"):
            tokens += [b for b in _bodies(_read(path), path) if set(b) >= _ENVELOPE]
        if not (pages or products or tokens):
            raise ValueError(
                f"recordings folder {str(folder)!r} holds no deal page, product or token body"
            )
        pages.sort(key=lambda entry: (entry[0], entry[1]))
        tokens.sort(key=lambda body: body.get("timestamp", 0))
        return cls(
            deal_pages=tuple(page for _, _, page in pages),
            products=products,
            token_bodies=tuple(tokens),
        )

    def first_timestamp(self) -> int | None:
        """The earliest recorded ``timestamp`` (Unix ms), if any body has one."""
        stamps = [
            body["timestamp"]
            for body in (*self.deal_pages, *self.token_bodies)
            if isinstance(body.get("timestamp"), int)
        ]
        return min(stamps) if stamps else None
