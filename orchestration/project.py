"""Where a Headwater project keeps things: the dbt project, the profiles, the data folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingestion.registry import SourcePaths

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Project:
    """The paths of one Headwater project.

    ``root`` holds ``dbt_project/`` and ``profiles/``; ``data_dir`` (default ``root/data``, or
    ``HEADWATER_DATA_DIR``) holds everything generated: the DuckDB warehouse, the demo inputs and dlt's
    pipeline state. ``dbt_project_dir`` and ``profiles_dir`` may point at a dbt project Headwater did not
    create.
    """

    root: Path
    data_dir: Path
    dbt_project_dir: Path
    profiles_dir: Path

    @classmethod
    def discover(
        cls,
        root: Path | None = None,
        *,
        dbt_project_dir: Path | None = None,
        profiles_dir: Path | None = None,
    ) -> Project:
        """The project at ``root``, else ``HEADWATER_PROJECT_DIR``, else the first folder up from the
        working directory that holds ``dbt_project/``.

        Raises:
            FileNotFoundError: no project found; the message lists where it looked.
        """
        searched: list[str] = []
        candidates: list[Path] = []
        if root is not None:
            candidates.append(Path(root))
            searched.append(f"--project-dir {root}")
        elif os.environ.get("HEADWATER_PROJECT_DIR"):
            candidates.append(Path(os.environ["HEADWATER_PROJECT_DIR"]))
            searched.append(f"HEADWATER_PROJECT_DIR={os.environ['HEADWATER_PROJECT_DIR']}")
        else:
            cwd = Path.cwd()
            candidates.extend([cwd, *cwd.parents])
            searched.append(f"{cwd} and its parents")
        for candidate in candidates:
            if (candidate / "dbt_project" / "dbt_project.yml").exists() or dbt_project_dir is not None:
                base = candidate.resolve()
                data = Path(os.environ.get("HEADWATER_DATA_DIR") or base / "data").resolve()
                return cls(
                    root=base,
                    data_dir=data,
                    dbt_project_dir=Path(dbt_project_dir or base / "dbt_project").resolve(),
                    profiles_dir=Path(profiles_dir or base / "profiles").resolve(),
                )
        raise FileNotFoundError(
            "no Headwater project (a folder with dbt_project/dbt_project.yml) found; searched: "
            + "; ".join(searched)
            + ". Run from the repository root or pass --project-dir."
        )

    @property
    def is_headwater_dbt_project(self) -> bool:
        """True for the repository's own dbt project, whose sources Headwater's dlt pipelines load."""
        return self.dbt_project_dir == (self.root / "dbt_project").resolve()

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "headwater.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        return self.data_dir / "dlt_pipelines"

    def dlt_schemas(self, target: str) -> dict[str, Any]:
        """dlt's stored schema per source loaded to ``target`` (the raw tables' code versions); none for a dbt
        project Headwater does not ingest for."""
        if not self.is_headwater_dbt_project:
            return {}
        from ingestion import stored_schemas

        return stored_schemas(target=target, pipelines_dir=self.pipelines_dir)

    @property
    def source_paths(self) -> SourcePaths:
        from ingestion.registry import SourcePaths  # importing ingestion imports dlt (1-2.5 s): only when needed

        return SourcePaths(
            shop_db=self.data_dir / "demo" / "shop.db",
            marketing_landing=self.data_dir / "demo" / "landing" / "marketing",
        )

    @property
    def suites_dir(self) -> Path | None:
        """Great Expectations suites (``<asset key>.yml``): ``HEADWATER_SUITES_DIR``, else ``quality/suites`` of
        Headwater's own project; None for a foreign dbt project (the demo's suites name the demo's assets)."""
        if os.environ.get("HEADWATER_SUITES_DIR"):
            return Path(os.environ["HEADWATER_SUITES_DIR"]).resolve()
        return self.root / "quality" / "suites" if self.is_headwater_dbt_project else None

    def ensure_demo(self) -> int | None:
        """Generate the demo inputs (shop database, ad-spend exports) if absent; the simulated day when it did."""
        paths = self.source_paths
        if paths.shop_db.exists():
            return None
        from ingestion.marketing.simulator import write_spend
        from ingestion.shop.simulator import create_shop

        state = create_shop(paths.shop_db)
        write_spend(paths.marketing_landing, seed=state.seed, scale=state.scale, days=range(state.day + 1))
        return state.day

    @property
    def dbt_target_path(self) -> Path:
        """dbt's artifacts (manifest, run results), kept per data folder so test runs never share them; a scratch
        folder when the data folder cannot be written (a read-only mount: the reading commands still work)."""
        return writable(self.data_dir / "dbt_target")

    @property
    def dbt_log_path(self) -> Path:
        """dbt's log folder (``dbt.log``), with the same fallback as :attr:`dbt_target_path`."""
        return writable(self.data_dir / "dbt_logs")


def writable(path: Path) -> Path:
    """``path`` if this process can write there, else a folder of the same name under the system's temp folder
    (one per ``path``), so a command that only reads is not stopped by a read-only data folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".headwater-probe-"):
            pass
        return path
    except OSError:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        scratch = Path(tempfile.gettempdir()) / f"headwater-{digest}" / path.name
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch
