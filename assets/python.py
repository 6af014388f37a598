"""Python assets: a function that produces one asset, declared with :func:`asset`.

The decorator only describes (a frozen :class:`AssetSpec` beside the function); orchestration runs it
as a task of the same flow, after its upstream assets, with an :class:`AssetContext`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from assets.keys import AssetKey
from assets.specs import AssetKind, AssetSpec, RunPolicy


@dataclass(frozen=True)
class AssetContext:
    """What a Python asset's function receives: its key, the run, and the target's connection settings."""

    key: AssetKey
    run_id: str
    target_name: str
    target_type: str
    target_config: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class PythonAsset:
    spec: AssetSpec
    fn: Callable[[AssetContext], int | None]

    def __call__(self, context: AssetContext) -> int | None:
        return self.fn(context)


def asset(
    key: str,
    *,
    deps: Iterable[str] = (),
    layer: str = "python",
    tags: Iterable[str] = (),
    owners: Iterable[str] = (),
    description: str | None = None,
    retries: int = 0,
) -> Callable[[Callable[[AssetContext], int | None]], PythonAsset]:
    """Declare ``fn(context) -> rows | None`` as the producer of asset ``key`` (``schema.table``).

    Raises:
        ValueError: a malformed key or dependency key.
    """
    asset_key = AssetKey.parse(key)
    dep_keys = tuple(sorted({AssetKey.parse(d) for d in deps}))

    def wrap(fn: Callable[[AssetContext], int | None]) -> PythonAsset:
        spec = AssetSpec(
            key=asset_key,
            kind=AssetKind.PYTHON,
            deps=dep_keys,
            layer=layer,
            tags=frozenset(tags),
            owners=tuple(owners),
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            unique_id=f"python.{fn.__module__}.{fn.__qualname__}",
            name=asset_key.name,
            fqn=(fn.__module__.split(".")[0], asset_key.name),
            policy=RunPolicy(retries=retries),
            code_version=(version := _source_version(fn)),
            unknown_code="" if version else f"the source of {fn.__module__} cannot be read",
        )
        return PythonAsset(spec=spec, fn=fn)

    return wrap


def collect(namespace: dict[str, Any]) -> list[PythonAsset]:
    """The Python assets defined in a module's namespace, in name order."""
    return [value for _, value in sorted(namespace.items()) if isinstance(value, PythonAsset)]


def _source_version(fn: Callable[..., Any]) -> str | None:
    """A hash of the source of the module that defines ``fn``: a Python asset is stale when that module changes.
    None (rebuilt every run) when the source cannot be read."""
    try:
        text = inspect.getsource(inspect.getmodule(fn) or fn)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]
