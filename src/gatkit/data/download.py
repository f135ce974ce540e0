"""Fetch dataset files from their public location, verify them, cache them atomically.

Rules every loader follows:

- The cache root is the ``root`` argument, else the ``GATKIT_DATA`` environment variable,
  else ``~/.cache/gatkit``.
- A download goes to a temporary file in the destination folder, is checked against its
  pinned sha256, and only then renamed into place. A corrupt or truncated file is reported
  by name with the expected and actual checksums and is never cached.
- Offline with no files: :class:`gatkit.errors.DatasetError` says which files to place where.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gatkit.errors import DatasetError

DATA_ENV = "GATKIT_DATA"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``root``, else ``$GATKIT_DATA``, else ``~/.cache/gatkit``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gatkit"


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_id_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """The file's git blob id (``git hash-object``): sha1 of ``b"blob <size>\\0"`` + bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Digest:
    """One acceptable checksum of a file.

    ``kind`` is ``"sha256"`` (hex sha256 of the bytes) or ``"git-blob"`` (the git blob id,
    a sha1 over a ``blob <size>`` header and the bytes: useful when only the upstream
    repository's blob id is known). ``note`` says where the value comes from.
    """

    kind: str
    value: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _DIGEST_FUNCTIONS:
            raise ValueError(
                f"Digest.kind must be one of {sorted(_DIGEST_FUNCTIONS)}, got {self.kind!r}"
            )

    def describe(self) -> str:
        """``"<kind> <value> (<note>)"`` for error messages."""
        note = f" ({self.note})" if self.note else ""
        return f"{self.kind} {self.value}{note}"


_DIGEST_FUNCTIONS = {"sha256": sha256_of, "git-blob": git_blob_id_of}

#: A pinned checksum: a hex sha256 string, or several :class:`Digest` alternatives of which
#: any one must match.
Expected = str | Sequence[Digest]


def _alternatives(expected: Expected) -> tuple[Digest, ...]:
    if isinstance(expected, str):
        return (Digest("sha256", expected),)
    return tuple(expected)


def check_digest(path: Path, expected: Expected) -> str | None:
    """``None`` if ``path`` matches ``expected`` (any alternative), else the mismatch text.

    The text reads ``"expected sha256 X, got Y"`` (alternatives joined by ``or``).
    """
    alternatives = _alternatives(expected)
    actual: dict[str, str] = {}
    for digest in alternatives:
        if digest.kind not in actual:
            actual[digest.kind] = _DIGEST_FUNCTIONS[digest.kind](path)
        if actual[digest.kind] == digest.value:
            return None
    wanted = " or ".join(digest.describe() for digest in alternatives)
    got = ", ".join(f"{kind} {value}" for kind, value in actual.items())
    return f"expected {wanted}, got {got}"


def verify_file(path: Path, expected_sha256: Expected) -> None:
    """Raise :class:`DatasetError` naming ``path`` if its checksum differs from the pinned one.

    ``expected_sha256`` is a hex sha256, or a sequence of :class:`Digest` alternatives.
    """
    mismatch = check_digest(path, expected_sha256)
    if mismatch is not None:
        raise DatasetError(
            f"checksum mismatch for {path}: {mismatch} ({path.stat().st_size} bytes). The "
            "file is corrupt or truncated: delete it and download it again."
        )


def download_verified(
    url: str, destination: Path, expected_sha256: Expected, timeout: float = 60.0
) -> None:
    """Download ``url`` to ``destination`` atomically, keeping it only if its sha256 matches.

    Bytes go to a temporary file beside ``destination``; after the checksum matches the file
    is renamed into place (atomic on one filesystem). On any failure the temporary file is
    removed and nothing is cached.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            while chunk := r.read(1 << 20):
                out.write(chunk)
        mismatch = check_digest(tmp, expected_sha256)
        if mismatch is not None:
            raise DatasetError(
                f"checksum mismatch for {destination.name} downloaded from {url}: "
                f"{mismatch}; the file was not cached"
            )
        os.replace(tmp, destination)
    except (urllib.error.URLError, OSError) as error:
        raise DatasetError(f"could not download {url} to {destination}: {error}") from error
    finally:
        if tmp.exists():
            tmp.unlink()


def ensure_files(
    folder: Path,
    checksums: Mapping[str, Expected],
    base_url: str | None,
    dataset: str,
    download: bool = True,
) -> dict[str, Path]:
    """Make sure every file of ``checksums`` is in ``folder`` and verified; return their paths.

    A checksum is a hex sha256 or a sequence of :class:`Digest` alternatives.

    Missing files are downloaded from ``base_url + name`` when ``download`` is true. Files
    already present are verified against their checksums (a mismatch raises, naming the file).
    If a file is missing and cannot be fetched, the error lists every missing file and the
    folder to put it in.
    """
    paths = {name: folder / name for name in checksums}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing and download and base_url is not None:
        failures = []
        for name in missing:
            try:
                download_verified(base_url + name, paths[name], checksums[name])
            except DatasetError as error:
                failures.append(str(error))
                if isinstance(error.__cause__, urllib.error.URLError):
                    break  # offline or host unreachable: the other files would fail alike
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            raise DatasetError(
                f"{dataset}: could not obtain {len(missing)} file(s): "
                + "; ".join(failures)
                + f". Place these files in {folder}: {', '.join(missing)} "
                f"(or point {DATA_ENV} / --data-dir at a folder that has them)."
            )
    elif missing:
        raise DatasetError(
            f"{dataset}: missing file(s) {', '.join(missing)} in {folder}. Place them there "
            f"(or point {DATA_ENV} / --data-dir at a folder that has them)."
        )
    for name, path in paths.items():
        verify_file(path, checksums[name])
    return paths
