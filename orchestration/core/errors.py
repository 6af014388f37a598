"""Errors a user can fix (all :class:`UserError`, from ``assets.errors``), said in one line with the file (and line)
and the fix; and reading the YAML files Headwater reads (profiles.yml, dbt_project.yml, headwater.yml, prefect.yaml)
so that a typo says where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assets.errors import UserError

__all__ = ["LOGGER", "ConfigFileError", "RunLogError", "UserError", "log_failure", "log_file", "read_yaml"]


class ConfigFileError(UserError, ValueError):
    """A file Headwater reads is not valid; the message names the file, the line and the fix."""


class RunLogError(UserError, RuntimeError):
    """The run log cannot be read or written (a damaged file, an unreachable warehouse); the message says which
    and what to do."""


def read_yaml(path: Path, fix: str) -> Any:
    """The YAML document at ``path`` (None when empty).

    Raises:
        ConfigFileError: not valid YAML; ``<path>:<line>:<column>: <problem>; <fix>``.
    """
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        # where PyYAML noticed it, and where the construct it was reading began (an unclosed bracket: that line)
        mark, start = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        context = getattr(exc, "context", None)
        if context and start is not None:
            problem = f"{context} that starts at line {start.line + 1}: {problem}"
        raise ConfigFileError(f"{where}: not valid YAML ({problem}); {fix}") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: not a text file ({exc.reason}); {fix}") from None


LOGGER = "headwater"
"""The logger whose records go to ``<data>/logs/headwater.log`` (never the terminal): tracebacks of failures the run
reports in one line (a dlt source, a Python asset, a GX declaration, a view that could not be built)."""


def log_file(data_dir: Path) -> Path:
    """Attach ``<data_dir>/logs/headwater.log`` (rotated at 5 MB, 3 kept) to the ``headwater`` logger once; returns
    the file."""
    import logging
    from logging.handlers import RotatingFileHandler

    path = Path(data_dir) / "logs" / "headwater.log"
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        except OSError:  # a read-only data folder: the run goes on without the file
            return path
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the terminal shows the one line; the file keeps the traceback
    return path


def log_failure(what: str, exc: BaseException) -> None:
    """Keep the traceback of a failure the run reports as one line (``what``: the asset or step)."""
    import logging

    logging.getLogger(LOGGER).error("%s: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
