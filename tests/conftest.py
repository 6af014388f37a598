"""Shared fixtures: an isolated data folder and Prefect home per test session, and a CLI runner."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("HEADWATER_REQUIRE_SERVICES") == "1"


def base_env(data_dir: Path, prefect_home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment for a Headwater process that must not touch the developer's own data or Prefect.

    Without ``api_url`` each process starts Prefect's ephemeral server in ``prefect_home`` (a new home migrates a
    new database: ~15 s of CPU per run here); with it, the process talks to that started server (``prefect_server``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "PREFECT_"))}
    env.update(
        HEADWATER_DATA_DIR=str(data_dir),
        HEADWATER_PROJECT_DIR=str(REPO),
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        RUNTIME__DLTHUB_TELEMETRY="false",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        COLUMNS="200",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def postgres_env(env: dict[str, str], database_url: str) -> dict[str, str]:
    """``env`` plus the variables the ``postgres`` target reads, pointing at ``database_url`` (trust auth: the
    password is required by the profile but unused)."""
    import sqlalchemy as sa

    url = sa.make_url(database_url)
    return {
        **env,
        "HEADWATER_PG_HOST": str(url.host),
        "HEADWATER_PG_PORT": str(url.port),
        "HEADWATER_PG_USER": str(url.username),
        "HEADWATER_PG_PASSWORD": "unused-under-trust-auth",
        "HEADWATER_PG_DATABASE": str(url.database),
    }


class Zygote:
    """``tests/zygote.py`` for this test process: started on the first :func:`run_cli`, one command at a time."""

    _instance: Zygote | None = None

    def __init__(self) -> None:
        import tempfile
        import threading

        self.folder = Path(tempfile.mkdtemp(prefix="hw-zygote-"))
        env = base_env(self.folder / "data", self.folder / "prefect_home")
        env["GX_ANALYTICS_ENABLED"] = "false"
        self.interpreter = {k: v for k, v in env.items() if k.startswith("PYTHON")}
        self.log = (self.folder / "zygote.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
        )
        self.lock = threading.Lock()
        self.count = 0
        if self._read() != {"ready": True}:
            raise RuntimeError(f"the test zygote did not start: {(self.folder / 'zygote.log').read_text()[-2000:]}")

    @classmethod
    def get(cls) -> Zygote | None:
        if os.environ.get("HEADWATER_TEST_FORK") == "0":
            return None
        if cls._instance is None or cls._instance.process.poll() is not None:
            import atexit

            cls._instance = Zygote()
            atexit.register(cls._instance.stop)
        return cls._instance

    def takes(self, env: dict[str, str]) -> bool:
        """Whether a fork can stand for a fresh interpreter in ``env``: not when it sets a ``PYTHON*`` variable that
        acts only as an interpreter starts (``PYTHONHASHSEED``: every fork has the zygote's hash seed)."""
        return {k: v for k, v in env.items() if k.startswith("PYTHON")} == self.interpreter

    def _read(self) -> dict:
        import json

        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the test zygote died: {(self.folder / 'zygote.log').read_text()[-2000:]}")
        return json.loads(line)

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        import json
        import signal
        import threading

        self.count += 1
        out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        request = {"args": args, "env": env, "cwd": str(REPO), "stdout": str(out), "stderr": str(err)}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = self._read()["pid"]
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            rc = self._read()["rc"]
        finally:
            timer.cancel()
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
        out.unlink()
        err.unlink()
        command = [sys.executable, "-m", "orchestration.cli", *args]
        if timed_out.is_set():
            raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(command, rc, stdout, stderr)

    def stop(self) -> None:
        import shutil

        if self.process.poll() is None:
            stop_process_group(self.process)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def run_cli(
    args: list[str], env: dict[str, str], *, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``headwater ARGS`` as the user would, in a process of its own: a fork of the test zygote (imports done
    once, ``tests/zygote.py``), or a fresh interpreter when the zygote is busy, ``env`` sets an interpreter variable
    (``PYTHONHASHSEED``) or ``HEADWATER_TEST_FORK=0``. Tests about signals use :func:`start_cli`."""
    zygote = Zygote.get()
    if zygote is not None and zygote.takes(env) and zygote.lock.acquire(blocking=False):
        try:
            proc = zygote.run(args, env, timeout)
        finally:
            zygote.lock.release()
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if check and proc.returncode != 0:
        raise AssertionError(f"headwater {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def store_secret(variable: str, value: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``headwater secret VARIABLE`` with ``value`` typed at its prompt: a Prefect Secret block on the env's server."""
    stored = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "secret", variable],
        input=value + "\n",
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stored.returncode == 0, stored.stdout + stored.stderr
    return stored


@contextlib.contextmanager
def prefect_worker(pool: str, env: dict[str, str], log_path: Path):
    """A Prefect ``process`` worker polling ``pool`` (output in ``log_path``); stopped with its flow runs at the end."""
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield worker
        finally:
            stop_process_group(worker)


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``headwater ARGS`` in its own process group (so a test can kill it and its children), output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect_home")


@pytest.fixture
def hw_env(tmp_path: Path, prefect_home: Path) -> dict[str, str]:
    return base_env(tmp_path / "data", prefect_home)


SHARED_SCENARIO = {"tests.orchestration.test_docs_catalog", "tests.orchestration.test_end_to_end"}
"""Modules that use the session's materialized demo (tests/orchestration/conftest.py ``scenario``)."""
LONGEST = ("tests/reliability/test_interrupts.py", "tests/orchestration/test_snowflake_target.py",
           "tests/orchestration/test_state_aware.py",
           "tests/orchestration/test_state_property.py", "tests/orchestration/test_state_selection.py",
           "tests/orchestration/test_docs_catalog.py",
           "tests/orchestration/test_end_to_end.py", "tests/orchestration/test_dbt_semantics.py",
           "tests/orchestration/test_deployment.py", "tests/orchestration/test_snowflake_deployment.py",
           "tests/orchestration/test_postgres_target.py",
           "tests/reliability/test_interrupts_postgres.py", "tests/reliability/test_crash_ingest.py",
           "tests/reliability/test_overlapping_runs.py", "tests/orchestration/test_checks.py",
           "tests/reliability/test_warehouse_down.py", "tests/reliability/test_load.py",
           "tests/reliability/test_bad_records.py", "tests/orchestration/test_stage_cut.py",
           "tests/reliability/test_crash_dbt.py", "tests/orchestration/test_asset_concurrency.py",
           "tests/orchestration/test_state_findings.py", "tests/reliability/test_fuzz.py",
           "tests/orchestration/test_compile_cache.py", "tests/orchestration/test_state_findings_pg.py",
           "tests/assets/test_selection_vs_dbt.py")  # fmt: skip
"""The slowest modules, longest first (``--durations`` on three workers): handed out first so that the workers end
together (pytest-xdist keeps this order under ``--no-loadscope-reorder``)."""


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::")[0]
    return LONGEST.index(path) if path in LONGEST else len(LONGEST)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``--dist loadgroup``) a module's tests run on one worker, so its module fixtures are set up
    once; the modules that share the materialized demo scenario run on one worker together. The group marks go on
    before pytest-xdist reads them; the longest modules are moved first after pytest has ordered items by fixture."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            module = item.module.__name__ if item.module else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group("scenario" if module in SHARED_SCENARIO else module))
    result = yield
    items.sort(key=_rank)
    return result


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (HEADWATER_REQUIRE_SERVICES=1) a test skipped for a missing service fails instead."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and item.get_closest_marker("postgres") is not None:
        report.outcome = "failed"
        report.longrepr = f"HEADWATER_REQUIRE_SERVICES=1 but {item.nodeid} was skipped: {report.longrepr}"


@pytest.fixture(scope="session")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo project's real manifest, from an in-process ``dbt parse`` into a private folder."""
    from orchestration.dbt import executor
    from orchestration.project import Project
    from orchestration.warehouse.targets import resolve_target

    data = tmp_path_factory.mktemp("manifest_data")
    old = os.environ.get("HEADWATER_DATA_DIR")
    os.environ["HEADWATER_DATA_DIR"] = str(data)
    try:
        project = Project.discover(REPO)
        return executor.parse(project, resolve_target(project, "dev"))
    finally:
        if old is None:
            os.environ.pop("HEADWATER_DATA_DIR", None)
        else:
            os.environ["HEADWATER_DATA_DIR"] = old


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_prefect_server(home: Path, database_url: str | None = None):
    """A real ``prefect server`` on loopback with its own home; SQLite unless ``database_url`` (PostgreSQL,
    ``postgresql+asyncpg://...``). Yields the API URL; the process group is stopped at the end."""
    import time
    import urllib.request

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        # loop services no test needs (runs are created through the API, schedules are paused): ~1/3 of an idle
        # server's CPU, three servers for the whole suite
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
        PREFECT_SERVER_SERVICES_FOREMAN_ENABLED="false",
        PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED="false",
        PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED="false",
    )
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited early: {(home / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("prefect server did not become healthy within 120 s")
        yield url
    finally:
        stop_process_group(proc)
        log.close()


EMULATOR = REPO / "tests" / "emulators" / "fakesnow"


@contextlib.contextmanager
def running_fakesnow(root: Path):
    """fakesnow's server, the Snowflake emulator (Snowflake cannot be reached from here), on loopback with its data
    in ``root``: its own locked environment (``tests/emulators/fakesnow``: fakesnow 0.12 needs duckdb 2), with the
    emulator gaps ``serve.py`` names closed. Yields the port; the process group is stopped at the end."""
    import shutil
    import time

    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("the Snowflake emulator runs in its own environment, made with uv: install uv")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    log_path = root / "fakesnow.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [uv, "run", "--quiet", "--project", str(EMULATOR), "--locked", "python", str(EMULATOR / "serve.py")]
            + ["-p", str(port), "-d", str(root / "fakesnow_db")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300  # the first start may install the emulator's environment
            while "Uvicorn running" not in log_path.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"fakesnow's server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.3)
            yield port
        finally:
            stop_process_group(proc)


def snowflake_env(env: dict[str, str], port: int, database: str = "ANALYTICS") -> dict[str, str]:
    """``env`` plus the variables the ``snowflake`` target reads, pointing at the emulator on ``port``. The
    database is not called HEADWATER: DuckDB, under fakesnow, cannot tell a database from a schema of the same name
    (the run log's HEADWATER schema)."""
    return {
        **env,
        "HEADWATER_SNOWFLAKE_ACCOUNT": "fakesnow",
        "HEADWATER_SNOWFLAKE_USER": "headwater",
        "HEADWATER_SNOWFLAKE_PASSWORD": "emulator-password-not-secret",
        "HEADWATER_SNOWFLAKE_DATABASE": database,
        "HEADWATER_SNOWFLAKE_WAREHOUSE": "WH",
        "HEADWATER_SNOWFLAKE_HOST": "localhost",
        "HEADWATER_SNOWFLAKE_PORT": str(port),
        "HEADWATER_SNOWFLAKE_PROTOCOL": "http",
    }


def snowflake_connect(port: int, database: str = "ANALYTICS", schema: str = "PUBLIC"):
    """A Snowflake connector connection to the emulator on ``port``."""
    import snowflake.connector

    return snowflake.connector.connect(
        account="fakesnow",
        user="headwater",
        password="x",
        host="localhost",
        port=port,
        protocol="http",
        database=database,
        schema=schema,
    )


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and its children; SIGKILL after ``timeout``."""
    import signal

    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def prefect_server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``prefect_server`` keeps its database and log (tests that look for leaked secrets search it too)."""
    return tmp_path_factory.mktemp("prefect_server")


@pytest.fixture(scope="session")
def prefect_server(prefect_server_home: Path):
    """A real ``prefect server`` on loopback (its own home and SQLite database), one per test worker, stopped at
    the end.

    The ephemeral server drops task-run records still queued when its process exits, so tests that
    read task runs back use this one and wait for its backlog. Tests whose flows need no ephemeral server of
    their own use it too (``base_env(..., api_url=prefect_server)``): that saves a server start and a database
    migration per run. The demo scenario (the quickstart's path) keeps the ephemeral server.
    """
    with running_prefect_server(prefect_server_home) as url:
        yield url


class Receiver:
    """A local HTTP receiver standing in for Slack, PagerDuty and generic webhooks (fakes: unreachable here)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body or b"{}")))
                self.send_response(202)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def by_path(self, path: str) -> list[dict]:
        return [body for p, body in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def read_task_runs(api_url: str, flow_run_id: str, *, expect_at_least: int = 1, timeout: float = 60) -> list:
    """Every task run of a flow run, once the server's backlog has drained (count stable, all final)."""
    import time
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    flt = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    deadline = time.monotonic() + timeout
    last: list = []
    stable = 0
    with SyncPrefectClient(api_url) as client:
        while time.monotonic() < deadline:
            runs: list = []
            while True:
                page = client.read_task_runs(
                    flow_run_filter=flt, sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200, offset=len(runs)
                )
                runs.extend(page)
                if len(page) < 200:
                    break
            settled = all(
                r.state_type is not None and r.state_name not in ("Running", "Retrying", "Pending") for r in runs
            )
            stable = stable + 1 if len(runs) == len(last) and settled else 0
            last = runs
            if len(runs) >= expect_at_least and stable >= 2:
                return runs
            time.sleep(0.5)
    return last


PG_HOST = os.environ.get("HEADWATER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HEADWATER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HEADWATER_TEST_PG_USER", "postgres")


@pytest.fixture(scope="session")
def make_pg_database():
    """A factory of fresh PostgreSQL databases (all dropped at the end), each returned as a SQLAlchemy URL.

    Skips with the reason when no server answers (a laptop); CI turns that skip into a failure.
    """
    import uuid

    import sqlalchemy as sa

    admin_url = f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {str(exc.orig).strip()[:200]}")
    created: list[str] = []

    def make(purpose: str = "test") -> str:
        name = f"hw_{purpose}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{name}"'))
        created.append(name)
        return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database(make_pg_database) -> str:
    """One fresh PostgreSQL database for this test session."""
    return make_pg_database("test")
