"""Content hashes for the seeds dbt does not hash: dbt checksums a seed over 1 MiB by its *path*, so a change of its
rows would leave its code version unchanged (and Headwater used to rebuild such a seed every run instead). Hashing
the file here costs milliseconds (about 1 GB/s); the hash is kept per file, size and modification time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_SEEN: dict[tuple[str, int, int], str] = {}


def hash_large_seeds(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with every seed dbt checksummed by path given ``sha256`` of its file's content instead (in
    place; returned). A file that cannot be read keeps dbt's path checksum (its code version stays unknown)."""
    for node in (manifest.get("nodes") or {}).values():
        if not isinstance(node, dict) or node.get("resource_type") != "seed":
            continue
        checksum = node.get("checksum") or {}
        if not isinstance(checksum, dict) or checksum.get("name") != "path":
            continue
        digest = file_sha256(Path(str(node.get("root_path") or "")) / str(node.get("original_file_path") or ""))
        if digest is not None:
            node["checksum"] = {"name": "sha256", "checksum": digest}
    return manifest


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's content (None when it cannot be read)."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _SEEN:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            _SEEN[key] = digest.hexdigest()
        return _SEEN[key]
    except OSError:
        return None
