"""Targets: ``profiles/profiles.yml`` rendered once for dbt, dlt and the checks alike.

dbt reads the file itself; Headwater renders the same file with the same ``env_var()`` semantics, so
the destination dlt loads into is, by construction, the warehouse dbt builds in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

import base64
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

from assets.errors import UserError
from orchestration.core.errors import read_yaml
from orchestration.project import Project

PROFILE = "headwater"
TARGET_ENV = "HEADWATER_TARGET"
DEFAULT_TARGET = "dev"


class MissingCredentialError(UserError, RuntimeError):
    """A variable a target needs is not set; the message names it and where it was looked for."""


class UnknownTargetError(UserError, ValueError):
    """The requested target is not defined in profiles.yml."""


@dataclass(frozen=True)
class Target:
    """One rendered output of the ``headwater`` profile."""

    name: str
    type: str
    config: dict[str, Any] = field(repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """Variables dbt needs to render the same target, set only around a dbt invocation (``orchestration.dbt``): the
    target's name, the DuckDB path, and values read from Prefect Secret blocks (so never printed: ``repr=False``)."""

    def sqlalchemy_url(self) -> str:
        """A SQLAlchemy URL for the warehouse (checks, freshness). Holds the password: never print it.

        Raises:
            UnknownTargetError: an adapter Headwater cannot query.
        """
        import sqlalchemy as sa

        c = self.config
        if self.type == "duckdb":
            return f"duckdb:///{Path(c['path']).resolve()}"
        if self.type == "postgres":
            url = sa.URL.create(
                "postgresql+psycopg2",
                username=c["user"],
                password=c.get("password") or None,
                host=c["host"],
                port=int(c.get("port", 5432)),
                database=c["dbname"],
            )
            return url.render_as_string(hide_password=False)
        if self.type == "snowflake":
            key = self._private_key
            url = sa.URL.create(
                "snowflake",
                username=c["user"],
                password=c.get("password") or None,
                host=c["account"],
                database=c["database"],
                query={
                    "warehouse": c["warehouse"],
                    **({"role": c["role"]} if c.get("role") else {}),
                    # key-pair authentication: the connector takes the key as base64 of DER from the URL, which
                    # is itself a secret (GX reads it from an environment variable, never from its files)
                    **({"private_key": base64.b64encode(key).decode()} if key is not None else {}),
                },
            )
            return url.render_as_string(hide_password=False)
        raise UnknownTargetError(f"target {self.name!r} has type {self.type!r}, which Headwater cannot query")

    @cached_property
    def _private_key(self) -> bytes | None:
        """The Snowflake key pair's key (DER), read and decrypted once per target (every engine and dlt use it)."""
        return snowflake_private_key(self.config) if self.type == "snowflake" else None

    def connect_args(self) -> dict[str, Any]:
        """What SQLAlchemy hands the driver beside :meth:`sqlalchemy_url`: on Snowflake, an emulator's address
        (snowflake-sqlalchemy refuses host and protocol in the URL). No secret: GX stores these in its project file."""
        c = self.config
        if self.type != "snowflake" or not c.get("host"):
            return {}
        return {"host": c["host"], "port": int(c["port"]), "protocol": c["protocol"]}

    def engine(self, **kwargs: Any) -> sa.Engine:
        """A SQLAlchemy engine on the warehouse (``kwargs`` go to ``create_engine``; ``connect_args`` are merged)."""
        import sqlalchemy as sa

        connect = {**self.connect_args(), **kwargs.pop("connect_args", {})}
        return sa.create_engine(self.sqlalchemy_url(), connect_args=connect, **kwargs)

    def dlt_destination(self) -> Any:  # a dlt Destination (dlt's destination factories are untyped)
        """The dlt destination for this target."""
        import dlt

        if self.type == "duckdb":
            return dlt.destinations.duckdb(str(self.config["path"]))
        if self.type == "postgres":
            c = self.config
            # dlt requires a password even where the server trusts the connection.
            credentials = {
                "host": c["host"],
                "port": int(c.get("port", 5432)),
                "username": c["user"],
                "password": c.get("password") or "unused",
                "database": c["dbname"],
            }
            return dlt.destinations.postgres(credentials=credentials)
        if self.type == "snowflake":
            c = self.config
            credentials = {
                "host": c["account"],
                "username": c["user"],
                "password": c.get("password") or None,
                "database": c["database"],
                "warehouse": c["warehouse"],
                "role": c.get("role"),
            }
            if self._private_key is not None:  # dlt reads a PEM key (its passphrase applied here, so it needs none)
                credentials["private_key"] = _pem(self._private_key)
            if emulator := self.connect_args():  # the connector's own host/port/protocol arguments
                credentials["query"] = emulator
            return dlt.destinations.snowflake(credentials=credentials)
        raise UnknownTargetError(f"target {self.name!r} has type {self.type!r}, which Headwater cannot load into")


def snowflake_private_key(config: dict[str, Any]) -> bytes | None:
    """The key of Snowflake key-pair authentication as DER bytes (what the connector takes), from the profile's
    ``private_key`` (PEM text, or base64 of it) or ``private_key_path``, decrypted with ``private_key_passphrase``;
    None when the profile authenticates by password.

    Raises:
        MissingCredentialError: the key cannot be read or decrypted (the message names the setting, never the key).
    """
    value, path = config.get("private_key") or "", config.get("private_key_path") or ""
    if not value and not path:
        return None
    from cryptography.hazmat.primitives import serialization

    where = "private_key_path " + path if path else "private_key (HEADWATER_SNOWFLAKE_PRIVATE_KEY)"
    try:
        data = Path(path).expanduser().read_bytes() if path else value.encode()
        if not data.lstrip().startswith(b"-----"):
            data = base64.b64decode(data)
        passphrase = (config.get("private_key_passphrase") or "").encode() or None
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(data, password=passphrase)
        else:  # base64 of DER, as dbt-snowflake also accepts
            key = serialization.load_der_private_key(data, password=passphrase)
    except (OSError, ValueError, TypeError) as exc:
        reason = type(exc).__name__ if not isinstance(exc, OSError) else exc.strerror
        raise MissingCredentialError(
            f"target snowflake: cannot read the private key from {where} ({reason}): it must be a PEM private key "
            "(PKCS#8, encrypted or not), and private_key_passphrase (HEADWATER_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE) "
            "must open it"
        ) from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(der: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_private_key(der, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


SECRET_NAME = re.compile(r"PASSWORD|PRIVATE_KEY|PASSPHRASE|TOKEN|SECRET")
"""Variables whose name says they hold a secret: looked up in Prefect Secret blocks before their default is used
(a Snowflake account authenticates by password or by key pair: either may be optional, both are secrets)."""


def secret_block_name(variable: str) -> str:
    """The Prefect Secret block that may hold ``variable``: ``HEADWATER_PG_PASSWORD`` -> ``headwater-pg-password``."""
    return variable.lower().replace("_", "-")


def _secret_from_prefect(variable: str) -> str | None:
    """``variable``'s value from its Prefect Secret block, when a Prefect server is configured and has one.

    The value goes into the target's ``env`` (dbt renders its profile from ``env_var()``, set only around a dbt
    invocation), never into this process's environment; never logged, never a flow parameter.
    """
    if not os.environ.get("PREFECT_API_URL"):
        return None  # no server: a lookup would start an ephemeral one just to find nothing
    from prefect.blocks.system import Secret

    try:
        block: Any = Secret.load(secret_block_name(variable))  # sync here; typed as possibly a coroutine
        value = block.get()
    except ValueError:  # Prefect raises ValueError for a block that does not exist
        return None
    return str(value)


def _renderer(
    missing: list[str], overrides: dict[str, str] | None = None, found: dict[str, str] | None = None
) -> jinja2.Environment:
    """dbt's ``env_var()`` over ``overrides``, then the process environment, then Prefect Secret blocks (whose values
    land in ``found``); unset names land in ``missing``. Nothing is written to the process environment."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # YAML, not HTML: nothing to escape
    overrides = overrides or {}

    def env_var(name: str, default: str | None = None) -> str:
        if name in overrides:
            return overrides[name]
        if name in os.environ:
            return os.environ[name]
        if default is not None and not SECRET_NAME.search(name):
            return default
        secret = _secret_from_prefect(name)
        if secret is None and default is not None:
            return default
        if secret is not None:
            if found is not None:
                found[name] = secret
            return secret
        missing.append(name)
        return ""

    env.globals["env_var"] = env_var
    env.filters["as_number"] = lambda value: value
    env.filters["as_bool"] = lambda value: value
    env.filters["as_text"] = lambda value: value
    return env


def _render(value: Any, env: jinja2.Environment) -> Any:
    if isinstance(value, str):
        return env.from_string(value).render() if "{{" in value else value
    if isinstance(value, dict):
        return {k: _render(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, env) for v in value]
    return value


def dbt_profile_name(project: Project) -> str:
    """The ``profile:`` the dbt project asks for (Headwater's own project: ``headwater``)."""
    path = project.dbt_project_dir / "dbt_project.yml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no dbt_project.yml; pass --dbt-project to point at your dbt project")
    document = read_yaml(path, "fix the file (dbt reads it too)") or {}
    return str(document.get("profile") or PROFILE)


def _profile(project: Project) -> tuple[Path, str, dict[str, Any]]:
    """``(profiles.yml, profile name, profile)`` of the project's dbt profile.

    Raises:
        FileNotFoundError: no profiles.yml.
        UnknownTargetError: the file has no profile of the name the dbt project asks for.
    """
    profiles_file = project.profiles_dir / "profiles.yml"
    if not profiles_file.exists():
        raise FileNotFoundError(f"{profiles_file}: no profiles.yml; pass --profiles-dir to point at yours")
    document = read_yaml(profiles_file, "fix the file: every target (dlt, dbt, checks) is read from it") or {}
    profile_name = dbt_profile_name(project)
    profile = document.get(profile_name)
    if profile is None:
        raise UnknownTargetError(
            f"{profiles_file}: no profile named {profile_name!r} (the 'profile' of {project.dbt_project_dir}); "
            f"profiles there: {', '.join(sorted(document)) or 'none'}"
        )
    return profiles_file, profile_name, profile


def target_names(project: Project) -> list[str]:
    """The targets (outputs) the project's profile defines, sorted; empty when there is no profile."""
    try:
        return sorted(_profile(project)[2].get("outputs") or {})
    except (FileNotFoundError, UnknownTargetError):
        return []


def resolve_target(project: Project, name: str | None = None) -> Target:
    """The target called ``name`` (else ``HEADWATER_TARGET``, else ``dev``), rendered.

    The dev DuckDB path is made absolute under the project's data folder, so dlt and dbt agree on it
    whatever the working directory.

    Raises:
        UnknownTargetError: no such output in the profile.
        MissingCredentialError: a required variable is unset; names every missing variable.
    """
    profiles_file, profile_name, profile = _profile(project)
    default = str(_render(profile.get("target") or "", _renderer([]))).strip() or DEFAULT_TARGET
    name = name or os.environ.get(TARGET_ENV) or default
    outputs = profile.get("outputs", {})
    if name not in outputs:
        raise UnknownTargetError(
            f"{profiles_file}: profile {profile_name!r} has no target {name!r}; targets: {', '.join(sorted(outputs))}"
        )
    env_overrides = {TARGET_ENV: name}
    if outputs[name].get("type") == "duckdb":
        env_overrides["HEADWATER_DUCKDB_PATH"] = os.environ.get("HEADWATER_DUCKDB_PATH") or str(project.duckdb_path)
    missing: list[str] = []
    secrets: dict[str, str] = {}
    config = _render(outputs[name], _renderer(missing, env_overrides, secrets))
    env_overrides.update(secrets)
    if missing:
        names = ", ".join(sorted(set(missing)))
        blocks = ", ".join(secret_block_name(m) for m in sorted(set(missing)))
        searched = "Prefect Secret blocks " + blocks if os.environ.get("PREFECT_API_URL") else "no Prefect server"
        raise MissingCredentialError(
            f"target {name!r} needs environment variable(s) {names}; searched: the process environment "
            f"(env_var() in {profiles_file}, output {name!r}) and {searched} (PREFECT_API_URL). Set them, or "
            f"store them as Secret blocks named {blocks} on the Prefect server (`headwater secret VAR`)."
        )
    if config.get("type") == "snowflake" and not any(
        config.get(k) for k in ("password", "private_key", "private_key_path", "authenticator")
    ):
        raise MissingCredentialError(
            f"target {name!r} has no credential: set HEADWATER_SNOWFLAKE_PASSWORD, or for key-pair authentication "
            "HEADWATER_SNOWFLAKE_PRIVATE_KEY_PATH (a PEM file) or HEADWATER_SNOWFLAKE_PRIVATE_KEY (its text), with "
            "HEADWATER_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE if the key is encrypted (each from the environment or a "
            f"Prefect Secret block of the same name in lower case with dashes; see {profiles_file})"
        )
    if config.get("type") == "duckdb":
        path = Path(config["path"])
        # dbt resolves a relative path against its working directory: so do we.
        config["path"] = str(path if path.is_absolute() or path.as_posix() == ":memory:" else path.resolve())
        env_overrides["HEADWATER_DUCKDB_PATH"] = config["path"]
    return Target(name=name, type=str(config.get("type")), config=config, env=env_overrides)
