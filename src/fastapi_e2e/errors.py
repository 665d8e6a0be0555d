"""The package's exceptions and the long messages they carry.

Every message says what happened, why, and the fix, with the offending value
(passwords masked). They live here so their wording can be reviewed in one place.
"""

from __future__ import annotations


class E2EError(Exception):
    """Base class of every error the harness raises on purpose."""


class ConfigError(E2EError):
    """The harness was configured with a value it cannot use."""


class PostgresNotFoundError(E2EError):
    """No PostgreSQL server binaries were found for the embedded cluster."""


class ClusterStartError(E2EError):
    """The embedded PostgreSQL cluster could not be created or started."""


class DatabaseSetupError(E2EError):
    """The test databases could not be created on the given server."""


class LifespanError(E2EError):
    """The app's lifespan failed or did not finish in time."""


class ConnectionEscapeError(E2EError):
    """App code used a database connection outside the test's transaction."""


class SessionGateTimeout(E2EError):
    """A session waited too long for its turn on the test's shared connection."""


class LoopScopeError(E2EError):
    """A test asked for an event loop other than the harness's session loop."""


POSTGRES_NOT_FOUND = (
    "No PostgreSQL server binaries (initdb, postgres) were found, so the embedded test "
    "database cannot start. Looked in: {searched}. Fix one of: install PostgreSQL "
    "(e.g. `apt-get install postgresql`, `brew install postgresql`) or point PG_BINDIR "
    "at its bin directory; or use a running server with "
    "E2E_DATABASE_URL=postgresql://user:password@host:5432/postgres (or --e2e-db-url); "
    "or start the bundled one with `docker compose up -d db` and set "
    "E2E_DATABASE_URL=postgresql://postgres:postgres@localhost:5432/postgres."
)

BAD_BINDIR = (
    "{source} points at {bindir!r}, which does not contain {missing}. Point it at the "
    "bin directory of a PostgreSQL installation (the one holding initdb and postgres), "
    "or unset it to let the harness search."
)

INITDB_FAILED = (
    "initdb failed (exit {code}) creating the embedded cluster in {datadir}: {output}. "
    "The harness runs initdb as {user!r}; check that this user can write to the run "
    "directory, or use an existing server with E2E_DATABASE_URL."
)

INITDB_TIMEOUT = (
    "initdb did not finish within {timeout:g} s creating the embedded cluster in "
    "{datadir}, and was stopped. A disk that slow (or a hung initdb) is better served "
    "by an existing server: set E2E_DATABASE_URL."
)

BINARY_NOT_RUNNABLE = (
    "Could not run {binary} as {user!r}: {cause}. When pytest runs as root the "
    "embedded cluster runs PostgreSQL's binaries as an unprivileged user, who needs "
    "to read and execute them and every directory above them. Fix the permissions, "
    "point PG_BINDIR at another installation, or use an existing server with "
    "E2E_DATABASE_URL."
)

SERVER_START_FAILED = (
    "The embedded PostgreSQL server ({postgres}) {reason}. Its log ends with: {log}. "
    "Fix the cause shown in the log, or use an existing server with E2E_DATABASE_URL."
)

CONTROLLER_CLUSTER_TIMEOUT = (
    "The xdist controller's embedded PostgreSQL cluster was not ready after {timeout:g} s "
    "(it reports its state in {path}, which stayed empty). The controller starts the "
    "cluster when it sets up the first worker; see the controller's output for why it "
    "stalled, or use an existing server with E2E_DATABASE_URL."
)

NO_UNPRIVILEGED_USER = (
    "pytest runs as root and PostgreSQL refuses to run as root, but no unprivileged "
    "user was found to run it as (tried 'postgres' and 'nobody'). Create one "
    "(`useradd --system postgres`), run pytest as a normal user, or use an existing "
    "server with E2E_DATABASE_URL."
)

SERVER_UNREACHABLE = (
    "Could not connect to the PostgreSQL server at {url} within {timeout:g} s: {cause}. "
    "Check that the server is running and the host and port are right (with the "
    "bundled service: `docker compose up -d db`), or unset E2E_DATABASE_URL/--e2e-db-url "
    "to use the embedded cluster."
)

SERVER_AUTH_FAILED = (
    "The PostgreSQL server at {url} rejected the login: {cause}. Fix the user name or "
    "password in E2E_DATABASE_URL/--e2e-db-url."
)

NO_CREATEDB = (
    "The role {user!r} at {url} may not create databases ({cause}), and the harness needs "
    "to create its own test database. Grant it with `ALTER ROLE {user} CREATEDB;`, or "
    "connect as a role that has CREATEDB."
)

BAD_DB_URL = (
    "{source} is {url!r}, which is not a PostgreSQL URL SQLAlchemy can parse ({cause}). "
    "Use the form postgresql://user:password@host:5432/postgres."
)

SCHEMA_FAILED = (
    "Building the schema into the template database failed while running {what}: "
    "{cause}. Fix the error above in your models or migrations; the harness builds "
    "the schema once per run before any test uses the database."
)

NO_PYTEST_ASYNCIO = (
    "pytest-fastapi-e2e runs every test on pytest-asyncio's session event loop, but "
    "pytest-asyncio is not active in this run (not installed, or disabled with "
    "`-p no:asyncio`). Fix: `pip install 'pytest-asyncio>=1.1'` and drop "
    "`-p no:asyncio`; or, for a run that does not use the harness, disable it with "
    "`-p no:fastapi_e2e`."
)

OLD_PYTEST_ASYNCIO = (
    "pytest-fastapi-e2e needs pytest-asyncio {needed} or newer for its session-scoped "
    "runner; this environment has {found}. Fix: `pip install -U 'pytest-asyncio>={needed}'`."
)

ALEMBIC_NOT_REDIRECTED = (
    "alembic upgrade head ({ini}) failed: the project's env.py connected with an engine "
    "the harness cannot redirect to the schema template ({tried}): {cause}. The harness "
    "redirects engines made with create_async_engine() or async_engine_from_config() "
    "for postgresql+asyncpg or +psycopg, whatever URL env.py gives them; this one is a "
    "sync engine or another driver. Fix: run the migrations through an async engine "
    "(Alembic's async template), or have env.py build its URL from variables the "
    "harness sets (the e2e_env ini key or E2EConfig.env): while migrations run they "
    "name the schema template."
)

EXTENSION_FAILED = (
    "Could not create the extension {name!r} listed in E2EConfig.extensions: {cause}. "
    "The server offers: {available}. Fix: install the package that provides it on the "
    "PostgreSQL server (Debian: postgresql-contrib or postgresql-15-<name>), or remove "
    "it from the list."
)

IMPORT_FAILED = (
    "E2EConfig.{field} is {value!r}, which could not be imported: {cause}. Use an "
    "import string of the form 'package.module:attribute' (attributes may be dotted, "
    "e.g. 'app.models:Base.metadata'), or pass the object itself."
)

APP_IMPORT_RAISED = (
    "Importing {module!r} for E2EConfig.{field} ({value!r}) raised {cause}: the error is "
    "in the app's code that runs at import (its settings, an engine, a client). The "
    "app's traceback follows. Fix the import; if it needs environment variables, the "
    "e2e_env ini key sets them to the test database's address before any conftest "
    "is imported."
)

SEEN_IN_AN_EARLIER_TEST = (
    "{headline} (the same error as at the first test that needed the harness, where "
    "the full message and traceback are shown)"
)

BAD_CONFIG_FIXTURE = (
    "The e2e_config fixture returned {value!r}, but the harness needs an "
    "fastapi_e2e.E2EConfig. Return E2EConfig(app=..., session_dependency=...) from a "
    "session-scoped fixture named e2e_config in conftest.py."
)

NO_CONFIG_FIXTURE = (
    "{nodeid} uses the harness fixture(s) {fixture}, but neither an e2e_config fixture "
    "nor the e2e_app ini key is set, so the harness does not know which app to test. "
    "Add to pyproject.toml:\n\n"
    "    [tool.pytest.ini_options]\n"
    '    e2e_app = "myapp.main:app"\n'
    '    e2e_metadata = "myapp.models:Base.metadata"\n\n'
    "or to conftest.py:\n\n"
    "    @pytest.fixture(scope='session')\n"
    "    def e2e_config():\n"
    "        return E2EConfig(app='myapp.main:app', metadata='myapp.models:Base.metadata')"
)

NOT_AN_APP = (
    "E2EConfig.app resolved to {value!r}, which is neither a FastAPI/Starlette app nor "
    "a factory returning one. Point it at the app object ('myapp.main:app') or at a "
    "function that builds it ('myapp.main:create_app')."
)

LIFESPAN_FAILED = (
    "The app's lifespan {phase} failed: {cause}. The harness runs the lifespan once per "
    "test session; fix the error in the app's {phase} code (its traceback follows)."
)

LIFESPAN_TIMEOUT = (
    "The app's lifespan {phase} did not finish within {timeout:g} s. Something in it is "
    "waiting forever or is slow (a connection to a host that is not there?). Raise the "
    "limit with --e2e-lifespan-timeout / e2e_lifespan_timeout, or fix the code."
)

CONNECTION_ESCAPE = (
    "A statement ran on a database engine the harness does not control "
    "({pool}), at {site}. It was stopped before reaching the server: that engine's "
    "connections are outside the test's transaction, so they cannot see the test's "
    "data and what they write would persist after the test. The harness wires every "
    "engine made with create_async_engine() for postgresql+asyncpg or +psycopg once "
    "the plugin is loaded; this one is a sync engine, another database, or was made "
    "before pytest loaded the plugin. Fix: make it with create_async_engine() (the "
    "app's async engines are wired whatever their URL), or reach the database through "
    "one of the app's async engines."
)

GATE_TIMEOUT = (
    "A session waited {timeout:g} s for its turn on the test's shared connection and "
    "gave up: the session holding it has not ended its transaction (its task is now at {holder}). "
    "Sessions on the shared connection take turns (interleaved savepoints would "
    "corrupt each other), so one left open blocks the rest. Fix: close sessions "
    "(`async with sessionmaker() as session:`) before awaiting another request's work."
)

FIXTURE_INSIDE_LOOP = (
    "{nodeid} asked for its first harness fixture while the event loop was running "
    "(request.getfixturevalue() inside an async test or async fixture). The harness "
    "starts the test's transaction on that loop, so it cannot start it from code the "
    "loop is running. Ask for the fixture as an argument of the test or of one of its "
    "fixtures; once the test has any harness fixture, getfixturevalue() works for the "
    "others."
)

LOOP_SCOPE_MISMATCH = (
    "{nodeid} uses harness fixtures ({fixtures}) but asks to run in a {scope}-scoped "
    "event loop, while the harness's engine, connection and app live on the session "
    "loop; awaiting them from another loop fails with 'attached to a different loop'. "
    "Fix: remove loop_scope={scope!r} from its asyncio marker (the harness runs async "
    "tests on the session loop), or use @pytest.mark.asyncio(loop_scope='session')."
)

ANYIO_BACKEND_UNSUPPORTED = (
    "{nodeid} runs on the anyio backend {backend!r}, but the harness's database and app "
    "run on asyncio (asyncpg is asyncio-only). Fix: parametrize anyio_backend with "
    "'asyncio' only for tests that use harness fixtures."
)

ANYIO_OPTIONS_UNSUPPORTED = (
    "{nodeid} asks anyio for backend options {options!r}, but the harness's app and "
    "database run on pytest-asyncio's session event loop, made before this test: "
    "anyio's options cannot apply to it, and ignoring them would run the test on "
    "another loop than you asked for. Fix: drop the options; to run on uvloop, give "
    "pytest-asyncio its loop policy with a session-scoped `event_loop_policy` fixture "
    "returning uvloop.EventLoopPolicy() (the start-up summary names the loop in use)."
)

ASYNC_FIXTURE_IN_SYNC_TEST = (
    "{nodeid} is a sync test (def, not async def) and asks for {fixture}, an asyncio "
    "object it could only use by running the harness's event loop itself. Fix: make the "
    "test `async def` (it then runs on the harness's loop with an AsyncClient), or check "
    "the outcome through `client`, which sync tests get as a sync httpx.Client."
)

FOREIGN_LOOP = (
    "The app used its database from another event loop (thread {thread}) at {site}, "
    "while this test's transaction lives on the harness's loop. Starlette's TestClient "
    "(or another server) runs the app on a loop of its own, outside the test's "
    "transaction. Fix: use the `client` fixture instead (sync tests get a sync "
    "httpx.Client on the same app, loop and transaction)."
)

REQUEST_TIMEOUT = (
    "The app did not answer {method} {url} within {timeout:g} s, the client's read "
    "timeout, so the request was cancelled. A route waiting for something that never "
    "happens (an event, a lock, another request) hangs like this. If it is just slow, "
    "raise the limit: client.get(..., timeout=30) or client.timeout = 30."
)

GATE_WAIT_NOTE = (
    " Meanwhile a session was waiting for its turn on the test's shared connection, "
    "held by a session whose task is at {holder}: the request probably waited for "
    "work that itself waits for the request."
)

RAW_DRIVER_ESCAPE = (
    "Refused {method} at {site}: a raw asyncpg connection (asyncpg.connect() or "
    "create_pool()) is outside the test's transaction, so it cannot see the test's "
    "rows and what it wrote would persist after the test. Nothing reached the server. "
    "Fix: run the query through one of the app's SQLAlchemy async engines (e.g. "
    "`async with engine.connect() as conn: await conn.exec_driver_sql(...)`), whose "
    "connections the harness puts in the test's transaction."
)

DRIVER_MISMATCH = (
    "A connection of driver {app} began a transaction at {site}, but this test's "
    "connection uses {test}: one transaction cannot span two drivers. The test's "
    "driver is the one of the app's first engine, or asyncpg when the app had made "
    "none when the test began. Fix: make all the app's engines with one driver, or "
    "create the engine at import or in the lifespan so the harness sees it first."
)

WRITES_DISCARDED = (
    "The harness rolled back a savepoint of the app (at {site}) that enclosed a later "
    "connection's committed savepoint: those committed writes were discarded with it. "
    "In production each session has its own connection and that commit would stay. "
    "If the test misses rows the app committed, this is why: finish one session's "
    "transaction before another starts inside it, or commit instead of rolling back."
)

STALE_TASK_SESSION = (
    "Refused a session opened at {site} by a task that a request of an earlier test "
    "started and left running (asyncio.create_task without awaiting it): its writes "
    "would land in this test's transaction. Fix: await the task before the route "
    "returns, or use BackgroundTasks, which finish before the request does."
)

SAVEPOINT_OUT_OF_ORDER = (
    "Refused to {action} savepoint {name} while a savepoint started inside it ({inner}) "
    "is still open. Both belong to sessions on the test's one connection, where ending "
    "the outer savepoint would silently end the inner one; in production the two "
    "sessions have separate connections. This happens when code keeps a session's "
    "transaction open across a call that opens another session (e.g. middleware that "
    "reads before call_next and commits after). The test's connection is unusable for "
    "the rest of this test. Fix: end the outer session's transaction (commit or close) "
    "before that call, or begin it after the call returns."
)

OUTER_TRANSACTION_ENDED = (
    "Refused to commit or roll back the test's outer transaction, asked by {who}. "
    "Committing would persist the test's writes and rolling back would end its "
    "isolation. Use db_session.commit()/rollback(), which release or return to a "
    "savepoint, db_connection.begin_nested() for a savepoint of your own, or bind your "
    "own session with join_transaction_mode='create_savepoint'."
)

TEARDOWN_ROLLBACK_FAILED = (
    "Rolling back the test's transaction failed: {cause}. The test's writes are "
    "discarded anyway (the connection is dropped, not returned to the pool). The "
    "connection was probably broken by the test or the app (a server-side error, a "
    "cancelled query); the error above says which."
)

# --- failure reports (diagnosis/) -------------------------------------------------

BAD_TRACE_MODE = (
    "e2e_trace from {source} is {value!r}; it must be one of {choices}. 'off' writes no "
    "trace files, 'retain-on-failure' keeps them for failed tests, 'on' for every test."
)

BAD_FLAG = "{name} from {source} is {value!r}; it must be true or false (1/0, yes/no, on/off)."

SERVER_ERROR_SEEN = (
    "fastapi-e2e: the app raised {count} exception(s) while this test ran, first "
    "{headline} during {request}; see the 'fastapi-e2e' report section for the traceback."
)

STRICT_SERVER_ERRORS = (
    "The test passed, but the app raised {count} exception(s) behind its responses "
    "(first: {headline} during {request}), and --e2e-strict-server-errors / "
    "e2e_strict_server_errors fails such tests. Fix the app, or assert on the error "
    "response and turn the option off if the exception is expected."
)

QUERY_COUNT_FAILED = (
    "Expected {expectation} SQL statement(s) on the test's connection, but {count} ran "
    "(SAVEPOINT, RELEASE and ROLLBACK TO bookkeeping not counted):"
)

QUERY_REPEATED = (
    "{count} times{where}: {sql}\n    The same statement ran once per row of an "
    "earlier query: an N+1 pattern? Load the related rows in the first query "
    "(selectinload()/joinedload()) or fetch them all with one IN (...) query."
)

NOTE_MISSING_GREENLET = (
    "fastapi-e2e: SQLAlchemy tried to load an attribute lazily (a relationship, or a column "
    "expired by commit() or refresh()) from plain attribute access, which cannot await "
    "under asyncio. In these tests that happens in the route or in the test body when an "
    "object is used after its session committed or expired it. Fix: load what you need "
    "in the query (selectinload()/joinedload()), `await session.refresh(obj, ['attr'])`, "
    "`await obj.awaitable_attrs.attr`, or use expire_on_commit=False."
)

NOTE_ANOTHER_OPERATION = (
    "fastapi-e2e: two operations ran at once on one asyncpg connection. Every session and "
    "request of a test shares the test's one connection; the harness makes the sessions "
    "it creates take turns, but not two awaits on the same session, connection or raw "
    "driver connection (asyncio.gather on db_session/db_connection, a session shared "
    "between tasks). Fix: await those operations one after another, or give each task "
    "its own session from the app's sessionmaker."
)

NOTE_LOOP_MISMATCH = (
    "fastapi-e2e: an object bound to one event loop was used from another. The harness "
    "runs the app, its engine, the test's connection and every async test and fixture "
    "on pytest-asyncio's session loop. Fix: do not give tests or fixtures that use the "
    "harness their own loop (loop_scope other than 'session', asyncio.run(), a new "
    "loop), and create engines and clients inside the app's lifespan, not at import "
    "time on another loop."
)

NOTE_LIFESPAN_TIMEOUT = (
    "fastapi-e2e: the lifespan runs once per test session, on the session loop, before "
    "the first test that uses the app; while it waits, no test can run. Common causes "
    "here: connecting to a service the test environment does not have (set it up, or "
    "replace it through E2EConfig.app's factory), or awaiting something only a request "
    "would trigger."
)

NOTE_TEARDOWN_ROLLBACK = (
    "fastapi-e2e: the test's connection was no longer usable at teardown. Causes seen "
    "here: a request cancelled mid-query (the client's timeout), a task the test "
    "started and did not await still using the connection, or the server ending the "
    "session (idle_in_transaction_session_timeout, pg_terminate_backend). Fix: await "
    "or cancel such tasks before the test ends, and raise timeouts that are too short."
)

BAD_ENV_TEMPLATE = (
    "The environment template {value} from {source} is unusable: {why}. Each entry "
    "names a variable the app reads and a template of the test database's address, "
    "with the fields {fields}; e.g. DATABASE__PORT={{port}} or "
    "DATABASE_URL=postgresql+psycopg://{{user}}:{{password}}@{{host}}:{{port}}/{{database}}."
)

BAD_INI_VALUE = (
    "The ini key {key} is {value!r}: {why}. Fix it in the [tool.pytest.ini_options] "
    "table of pyproject.toml (or pytest.ini), e.g. {example}."
)

TCP_PORT_TAKEN = (
    "The embedded cluster could not listen on 127.0.0.1:{port}: {cause}. The port was "
    "free when the test database's address was settled (before the conftests were "
    "imported, so the app's settings could read it), and something took it since. Run "
    "again (a new port is chosen), or set E2E_DATABASE_URL to use a server of your own."
)


LIVE_SERVER_NEEDS_UVICORN = (
    "live_server serves the app with uvicorn, which is not installed. Fix: "
    'pip install "pytest-fastapi-e2e[live]" (or add uvicorn>=0.29 to your test '
    "dependencies)."
)

LIVE_SERVER_IDLE = (
    "fastapi-e2e: {method} {path} reached the live server while no test that asks for "
    "live_server was running, so it was refused: the app's database work would have "
    "run outside any test's transaction, seeing none of a test's rows and keeping its "
    "writes. Fix: make requests to live_server.url from inside a test (or a "
    "function-scoped fixture) that asks for live_server, and let them finish before "
    "the test ends (e.g. await the page's navigation before asserting)."
)

# --- streamed responses and WebSockets (client/transport.py, client/websocket.py) ---

STREAM_TIMEOUT = (
    "The response stream of {method} {url} sent no chunk for {timeout:g} s (the client's "
    "read timeout, which applies between chunks) after {chunks} chunk(s), {size} "
    "bytes, so the client left it (the app is told it disconnected). An endless "
    "stream (server-sent events) must send something, a keep-alive comment for "
    "instance, more often than that. If the gap is expected, raise the limit: "
    "client.stream(..., timeout=30)."
)

APP_DID_NOT_FINISH = (
    "The app sent the whole response to {method} {url} but did not return within "
    "{timeout:g} s (the client's read timeout), so it was cancelled. Its background "
    "tasks run before the response counts as done, as they did before the client "
    "returned: one waiting for something that never happens hangs like this. Raise "
    "the limit if it is just slow: client.get(..., timeout=30)."
)

STREAM_BROKEN = (
    "The app raised {error} after it started the response to {method} {url} "
    "({chunks} chunk(s), {size} bytes sent), so the body is incomplete; a real server "
    "would drop the connection the same way. The traceback is in the 'fastapi-e2e' "
    "report section of the failed test."
)

STREAM_UNFINISHED = (
    "The app returned without finishing the body of {method} {url} (its last "
    "http.response.body message had more_body=True), so the body is incomplete; a real "
    "server would drop the connection. Send a last message with more_body=False."
)

WEBSOCKET_NOT_ACCEPTED = (
    "The app did not accept or refuse the WebSocket {url} within {timeout:g} s (the "
    "client's read timeout), so the connection was cancelled. A websocket route must "
    "call `await websocket.accept()` (or close) first. If it is just slow, raise the "
    "limit: aconnect_ws(url, client, timeout=30)."
)

NO_WSPROTO = (
    "A WebSocket request reached the harness's client, but the wsproto package, which "
    "the harness speaks the WebSocket protocol with, is not installed. Install the "
    "extra: pip install 'pytest-fastapi-e2e[websockets]' (httpx-ws and wsproto)."
)

# --- production parity (database/parity.py) ------------------------------------------

APP_ROLE_MISSING = (
    "e2e_app_role names the role {role!r}, which does not exist on the test database's "
    "server, so the app's work cannot run as it. Create it (in E2EConfig.setup_sql or "
    "your migrations, with the grants your app needs), or use e2e_app_role = auto to "
    "have the harness make a role for the run that owns nothing."
)

DEFERRED_AT_TEST_END = (
    "Rows this test wrote itself violate a deferred constraint, which production's "
    "COMMIT would reject: {cause}. The harness checks deferred constraints (DEFERRABLE "
    "INITIALLY DEFERRED foreign keys, unique and exclusion constraints, constraint "
    "triggers) at each commit of the app and, for the test's own rows, at the end of "
    "the test, since the test's transaction never commits. Fix the rows the test or "
    "its fixtures insert, or pass --e2e-no-deferred-check (ini: e2e_no_deferred_check "
    "= true) to turn the checks off."
)

# --- seed data, data files and factories ------------------------------------------

DATA_FILE_UNREADABLE = (
    "The seed data file {path} cannot be loaded: {why}. A JSON or YAML file maps table "
    'names to lists of rows ({{"products": [{{"id": 1, "name": "Tea"}}]}}); a CSV '
    "file holds one table, named by the file (products.csv), with a header row of column "
    "names. Fix the file, or the path given to seed(files=...), seed_files() or "
    "E2EConfig.seed_files."
)

DATA_FILE_YAML_MISSING = (
    "The seed data file {path} is YAML, and PyYAML is not installed, so it cannot be "
    'read. Fix: pip install "pytest-fastapi-e2e[yaml]" (or add PyYAML to your test '
    "dependencies), or write the file as JSON or CSV."
)

DATA_FILE_UNKNOWN_TABLE = (
    "The seed data file {path} names the table {table!r}, which is not in the schema's "
    "metadata (tables: {known}). Data files are loaded through the tables of "
    "E2EConfig.metadata (or, with alembic_ini, the tables reflected from the test "
    "database). Fix the name in the file (schema-qualified tables as 'schema.table'; for "
    "a CSV, the file's name), or add the table to the schema."
)

DATA_FILE_UNKNOWN_COLUMN = (
    "The seed data file {path}, {place}: the column {column!r} is not a column of the "
    "table {table} (columns: {known}). Fix the column name in the file (a CSV's header "
    "row), or add the column to the model."
)

DATA_FILE_BAD_VALUE = (
    "The seed data file {path}, {place}, column {column} of {table}: {why}. Values are "
    "converted by the column's type: dates and times in ISO 8601 (2024-05-01, "
    "2024-05-01T09:30:00+00:00), decimals as numbers or text, booleans as true/false, "
    "JSON columns as documents (in a CSV cell, JSON text), enums by member name or "
    "value; an empty CSV cell is NULL. Fix the value in the file."
)

SEED_SCOPE_ORDER = (
    "The {scope}-scoped seed {name!r} was set up while the narrower seed {inner!r} "
    "({inner_scope} scope) was open. Each seed is a savepoint inside the seeds around "
    "it, so a wider seed must start first, or the narrower one's end would take its "
    "rows with it; pytest sets up a test's fixtures widest scope first, so this happens "
    "when {name!r} is first asked for by a later test than {inner!r}. Fix: make "
    "{name!r} autouse (@seed(scope={scope!r}, autouse=True)), or ask for it in the "
    "tests that use {inner!r} too, e.g. pytestmark = "
    "pytest.mark.usefixtures({name!r})."
)

SEED_INSIDE_TEST = (
    "The {scope}-scoped seed {name!r} was set up while the test {nodeid} was already "
    "running (request.getfixturevalue() from inside the test, or a function-scoped "
    "fixture that asked for it after the test's transaction began). Its rows would be "
    "rolled back with that test, not kept for its group. Fix: ask for {name!r} in the "
    "test's parameters (or with pytest.mark.usefixtures), so it is set up before the "
    "test starts."
)

SEED_GROUP_LOST = (
    "The transaction holding the seed {name!r} was lost: an earlier test of its group "
    "ended the group's connection ({cause}). Its rows are gone, so the tests still to "
    "run in the group cannot see them. Fix the earlier test (a commit or close of "
    "db_connection itself, or a connection the server ended); its own failure says how."
)

SEED_NOT_ASYNC = (
    "@seed decorates {name!r}, which is not an async function. Seeds run on the "
    "harness's event loop with an AsyncSession: write it as `async def {name}(db_session): "
    "...`, adding rows with db_session.add(...) (they are flushed when it returns)."
)

NO_CURRENT_SESSION = (
    "current_session() was called while no test (or seed) of the harness was running, "
    "so there is no session to give: {what}. Call it (or create factory rows) from "
    "inside an async test that uses a harness fixture (client, db_session...) or from "
    "an @seed function."
)


# --- commits mode (@pytest.mark.e2e_commits) ------------------------------------------

POOL_CREATE_FAILED = (
    "A commits-mode test needs a database of its own, and cloning the schema template "
    "{template} into one failed: {cause}. The pool of ready databases cannot refill, so "
    "every commits-mode test of this run fails the same way (tests without the "
    "e2e_commits marker are not affected). Fix what the error names (the server's disk, "
    "max_connections, the role's CREATEDB privilege), or drop the marker."
)

POOL_WAIT_TIMEOUT = (
    "A commits-mode test waited {timeout:g} s for a database of its own and none became "
    "ready: cloning {template} did not finish. Something holds the template or the "
    "server is stuck (a long CREATE DATABASE, a lock: see pg_stat_activity). Fix that "
    "and run again."
)

KEPT_DATABASE = (
    "The database of this commits-mode test was kept (--e2e-keep-failed): {name}\n"
    "  URL:  {url}\n"
    "  psql: psql {dsn!r}{password_hint}\n"
    "{lifetime}"
)

KEPT_ON_EMBEDDED_CLUSTER = (
    "  It lives on the embedded cluster, which stops when this run ends: inspect it "
    "while the run is paused (--pdb, or a breakpoint), or run against a server of your "
    "own (--e2e-db-url) to keep it after the run."
)

KEPT_ON_SERVER = (
    "  It stays after the run; the next run's start-up drops it unless that run is "
    "given --e2e-keep-failed too."
)

COMMITS_IN_SEED_GROUP = (
    "This test is marked e2e_commits but runs inside a @seed group, whose rows live in "
    "the group's open transaction: the test's own database (a clone of the schema "
    "template) would not have them, and the test would see a different world than its "
    "seed fixture describes. Fix: move commits-mode tests to a module (or class) "
    "without @seed fixtures, and seed them in the test, or bake the rows into the "
    "template with E2EConfig.seed_files."
)

COMMITS_WITH_APP_ROLE = (
    "This test is marked e2e_commits while the run's app role is {role!r} "
    "(--e2e-app-role): commits mode does not yet run the app as that role in the "
    "test's own database, so row-level security would silently not apply. Fix: test "
    "RLS in tests without the e2e_commits marker, or run commits-mode tests in a run "
    "without --e2e-app-role."
)

QUERIES_IN_COMMITS_MODE = (
    "e2e_queries counts the statements on the test's shared connection, and a test "
    "marked e2e_commits has none (the app and the test use connections of their own), "
    "so any count it gave would be wrong. Fix: count queries in a test without the "
    "e2e_commits marker."
)
