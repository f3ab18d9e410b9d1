"""`iot-hub`: apply database migrations, run the Faust worker, rebuild rollups, serve the web
app, manage its users and API tokens."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.agents.tier_rollups import Progress
from iot_common import settings_cli
from iot_common.logs import RepeatLimitFilter, configure_logging

log = logging.getLogger("hub")


def load_settings() -> HubSettings:
    return settings_cli.load_settings(HubSettings, "HUB_")


def print_settings(settings: HubSettings, stream: TextIO | None = None) -> None:
    settings_cli.print_settings(settings.describe(), "HUB_", stream)


def start_command(settings: HubSettings) -> None:
    """Logging (logfmt on stderr) and the effective settings on stdout, for every command."""
    configure_logging(settings.log_level, hub=settings.consumer_group)
    if settings.log_level != "DEBUG":
        # Faust and mode log every service start and stop at INFO; the worker's own lifecycle
        # (started, signal received, stopping) stays visible.
        for name in ("faust", "mode"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("faust.worker").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ThirdPartyLogLimit())
    print_settings(settings)


class ThirdPartyLogLimit(logging.Filter):
    """For Faust, mode and aiokafka records only: one record per message template per 30 s
    (`RepeatLimitFilter`), and none longer than `max_chars` (Faust's shutdown warning lists every
    message it is still waiting for, thousands of them). On the handler, because a logger's own
    filters do not see records propagated from its children (`aiokafka.conn`...)."""

    PREFIXES = ("faust", "mode", "aiokafka")

    def __init__(self, max_chars: int = 2000) -> None:
        super().__init__()
        self._repeat_limit = RepeatLimitFilter(prefixes=self.PREFIXES)
        self._max_chars = max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == p or record.name.startswith(f"{p}.") for p in self.PREFIXES):
            return True
        if not self._repeat_limit.filter(record):
            return False
        text = record.getMessage()
        if len(text) > self._max_chars:
            record.msg = f"{text[: self._max_chars]}... ({len(text)} chars)"
            record.args = None
        return True


def _database_errors() -> tuple[type[Exception], ...]:
    """What a command reports as one line instead of a traceback: unreachable, refused, bad DSN."""
    import asyncpg

    return (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


# -- migrate -----------------------------------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    from hub.storage.migrations import migrate  # asyncpg only for this command

    try:
        applied = asyncio.run(migrate(settings.database_url))
    except _database_errors() as exc:
        log.error("migrate_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    log.info("migrate_done", extra={"applied": ",".join(applied) or "-"})
    return 0


def _add_migrate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply pending PostgreSQL migrations (idempotent)",
        description="Apply the SQL migrations shipped in the hub install to HUB_DATABASE_URL, "
        "each in its own transaction, exactly once. Safe to run from several processes at once.",
    )
    p.set_defaults(func=_migrate)


# -- worker ------------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    return run_worker(settings)


def run_worker(settings: HubSettings, **app_options: Any) -> int:
    """Run the Faust worker until SIGTERM or Ctrl-C; returns the exit code.

    Faust's worker owns the event loop and the signal handlers: on SIGTERM it stops fetching,
    waits for the batch in flight, commits its offsets, leaves the consumer group and exits.
    """
    import faust  # heavy import only for `worker`

    from hub.app import create_app
    from hub.notify.config import ConfigError
    from hub.rules import RulesError

    try:
        app = create_app(settings, **app_options)
    except RulesError as exc:
        log.error("rules_invalid", extra={"problems": "; ".join(exc.problems)})
        return 2
    except ConfigError as exc:
        log.error("notifications_invalid", extra={"problems": str(exc)})
        return 2
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        override_logging=False,  # keep our logfmt handler
        quiet=True,  # no banner on stdout
    )
    worker.spinner = None  # no terminal escape codes in the logs
    log.info("worker_starting", extra={"group": settings.consumer_group})
    if settings.kafka_sends_password_in_clear:
        log.warning(
            "kafka_password_in_clear",
            extra={"hint": "SASL PLAIN without TLS sends the password as it is: use SASL_SSL"},
        )
    _wait_for_kafka(settings)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        log.info("worker_stopped", extra={"exit_code": code})
        return code
    return 0


def _wait_for_kafka(settings: HubSettings) -> None:
    """Until a broker of `bootstrap` answers. Faust gives up at once when none does as it starts
    (the worker exited 1, and Kubernetes restarted it with a growing back-off), while PostgreSQL
    is waited for; so Kafka is waited for too, one `kafka_connect_failed` line per attempt. In a
    thread of its own, so the event loop Faust takes over is left as it is."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    from hub.agents.retry import Retrier
    from iot_common.kafka_diagnosis import diagnose

    async def bootstrap_once() -> None:
        security = settings.aiokafka_security()
        client = AIOKafkaClient(
            bootstrap_servers=[h.strip() for h in settings.kafka_bootstrap.split(",")],
            **security,
        )
        try:
            await client.bootstrap()
        except KafkaConnectionError:
            # aiokafka says only "Unable to bootstrap"; name the cause and the setting to fix.
            found = await diagnose(
                settings.kafka_bootstrap, security, "HUB_", 10.0, settings.kafka_ssl_certfile
            )
            if found is None:
                raise
            raise KafkaConnectionError(f"{found.kind}: {found.detail}; {found.hint}") from None
        finally:
            await client.close()

    failed: list[BaseException] = []

    def wait() -> None:
        try:
            asyncio.run(Retrier().kafka(bootstrap_once, what="kafka_connect"))
        except BaseException as exc:  # re-raised in the calling thread  # noqa: BLE001
            failed.append(exc)

    thread = threading.Thread(target=wait, name="kafka-wait", daemon=True)
    thread.start()
    thread.join()  # SIGTERM ends the process meanwhile (nothing is in flight yet)
    if failed:
        raise failed[0]


def _add_worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run the Faust agents (ingest, aggregate, alerts, device status)",
        description="Migrate the database and create partitions, then consume iot.telemetry "
        "(every reading into PostgreSQL, then Redis; 1-minute rollups; alert rules), "
        "iot.device-status and iot.edge-metrics; alert events go to iot.alerts and Redis "
        "(every topic name after HUB_KAFKA_TOPIC_PREFIX, if set). Kafka "
        "offsets move only after the database commit. Stops cleanly on SIGTERM or Ctrl-C: the "
        "batch in flight is finished and committed first.",
    )
    p.set_defaults(func=_worker)


# -- rollup ------------------------------------------------------------------------------------


def _parse_since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-27 or 2026-11-27T08:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rollup_rebuild(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    since: datetime = args.since
    until: datetime | None = args.until
    if until is not None and until <= since:
        log.error("rollup_rebuild_refused", extra={"reason": "--until must be after --since"})
        return 2
    return asyncio.run(
        _rebuild_rollups(
            settings,
            int(since.timestamp() * 1000),
            None if until is None else int(until.timestamp() * 1000),
            args.tier,
        )
    )


class _ProgressLog:
    """Each chunk of a rebuild as a `rollup_rebuild_progress` line: the last of each tier, and
    the others at most every `every_s` seconds."""

    def __init__(self, every_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last = -every_s

    def __call__(self, p: Progress) -> None:
        now = self._clock()
        if p.done < p.chunks and now - self._last < self._every_s:
            return
        self._last = now
        log.info(
            "rollup_rebuild_progress",
            extra={
                "tier": p.tier,
                "done": f"{p.done}/{p.chunks}",
                "through": datetime.fromtimestamp(p.end_ms / 1000, UTC).isoformat(),
                "rows_written": p.rows_written,
            },
        )


async def _rebuild_rollups(
    settings: HubSettings, since_ms: int, until_ms: int | None, tier: str
) -> int:
    from hub.agents.aggregate import RollupCounters
    from hub.agents.records import wall_clock_ms
    from hub.agents.retry import is_record_error
    from hub.agents.tier_rollups import rebuild_tiers, tiers_from
    from hub.storage.postgres import Database

    try:
        db = await Database.connect(settings.database_url)
    except _database_errors() as exc:
        log.error("rollup_rebuild_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    counters = RollupCounters()
    # By default up to the newest ts the worker accepts. A minute that cannot be computed (rows
    # from before the hub bounded values) is skipped and logged, the others are rebuilt.
    until = wall_clock_ms() + settings.max_ts_future_s * 1000 if until_ms is None else until_ms
    try:
        written = await rebuild_tiers(
            db, tiers_from(tier), since_ms, until, counters, is_poison=is_record_error,
            progress=_ProgressLog(),
        )  # fmt: skip
    except _database_errors() as exc:
        log.error("rollup_rebuild_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        await db.close()
    log.info(
        "rollup_rebuild_done",
        extra={
            "since_ms": since_ms,
            "rows_written": sum(written.values()),
            **{f"rows_{name}": rows for name, rows in written.items()},
            "buckets_skipped": counters.skipped_total,
        },
    )
    return 0


def _add_rollup_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rollup",
        aliases=["rollups"],
        help="maintain the rollups (readings_1m, readings_1h, readings_1d)",
        description="Maintain the rollups: 1-minute (readings_1m, from the readings table), "
        "hourly (readings_1h, from readings_1m) and daily (readings_1d, from readings_1h).",
    )
    rollup_sub = p.add_subparsers(dest="rollup_command", required=True, metavar="COMMAND")
    rebuild = rollup_sub.add_parser(
        "rebuild",
        help="recompute rollups from the tier below, over a time range",
        description="Recompute the rollups of --tier and every coarser tier (they are made "
        "from it) for each whole bucket from --since to --until, each from the tier below: "
        "minutes from readings, hours from minutes, days from hours. Idempotent; use after a "
        "restore or a changed rollup definition. Progress is logged per chunk "
        "(event=rollup_rebuild_progress); a bucket that cannot be computed is skipped and "
        "logged (event=rollup_skipped).",
    )
    rebuild.add_argument(
        "--since",
        required=True,
        type=_parse_since,
        help="ISO 8601 date or time; without a zone it is UTC",
    )
    rebuild.add_argument(
        "--until",
        type=_parse_since,
        default=None,
        help="ISO 8601 date or time, exclusive (default: now, plus HUB_MAX_TS_FUTURE_S)",
    )
    rebuild.add_argument(
        "--tier",
        choices=["all", "1m", "1h", "1d"],
        default="all",
        help="the finest tier to rebuild; the coarser ones follow (default: all, from readings)",
    )
    rebuild.set_defaults(func=_rollup_rebuild)


# -- web, user, token (hub/web) ----------------------------------------------------------------


def _web(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    secret = settings.web_storage_secret
    if secret is None or not secret.get_secret_value():
        log.error(
            "web_refused",
            extra={
                "reason": "HUB_WEB_STORAGE_SECRET is not set: set it to a long random string "
                "(it signs the session cookies)"
            },
        )
        return 2
    from hub.agents.retry import Retrier
    from hub.rules import RulesError
    from hub.rules.edits import build_rules, empty_document, load_seed
    from hub.web import server  # NiceGUI only for this command

    try:
        # Dashboard rule edits are checked over HUB_RULES_FILE: it must hold, as for a worker.
        build_rules(load_seed(settings.rules_file), empty_document())
    except RulesError as exc:
        log.error("rules_invalid", extra={"problems": "; ".join(exc.problems)})
        return 2
    try:
        # PostgreSQL may be away when the web app starts (a restarted cluster, the database's pod
        # still starting): wait for it, as the worker does, rather than exit into a restart loop.
        asyncio.run(
            Retrier().db(lambda: server.check_schema(settings.database_url), what="db_connect")
        )
    except server.SchemaMissingError as exc:
        log.error("web_refused", extra={"reason": str(exc)})
        return 1
    except _database_errors() as exc:
        log.error("web_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    server.run(settings)  # until SIGTERM or Ctrl-C
    return 0


def _add_web_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "web",
        help="serve the operator dashboard and the REST/WebSocket API",
        description="Serve the NiceGUI dashboard, the REST API under /api/v1 and the live "
        "WebSocket on HUB_WEB_HOST:HUB_HTTP_PORT. Needs HUB_WEB_STORAGE_SECRET and a migrated "
        "database (`iot-hub migrate`). Stops cleanly on SIGTERM or Ctrl-C.",
    )
    p.set_defaults(func=_web)


def _name_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("name", metavar="NAME", help=f"{what} name: 1..64 of A-Z a-z 0-9 _ . @ -")


def _role_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--role",
        required=True,
        choices=("viewer", "operator", "admin"),
        help=f"what the {what} may do: viewer (read), operator (also acknowledge and clear "
        "alerts), admin (everything)",
    )


def _read_password(from_stdin: bool) -> str | None:
    """The new password: the first line of stdin, or typed twice at a prompt; None on mismatch."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("password again: ") != first:
        return None
    return first


def _user_add(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    password = _read_password(args.password_stdin)
    if password is None:
        log.error("user_add_failed", extra={"user": args.name, "reason": "passwords differ"})
        return 2

    created: list[bool] = []

    async def add(auth: Any) -> None:
        created.append(await auth.add_user(args.name, password, args.role, actor=_cli_actor()))

    code = _with_auth(settings, add, "user_add_failed", user=args.name)
    if code == 0:
        # An existing user's password changed: their dashboard sessions ended with it.
        event = "user_added" if created[0] else "user_updated"
        log.info(event, extra={"user": args.name, "role": args.role})
    return code


def _cli_actor() -> Any:
    """Who the audit log records for a CLI action: "cli", with the OS user and host."""
    import os

    from hub.storage.audit_model import cli_actor

    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry, as in the hub's image
        os_user = f"uid{os.getuid()}"
    return cli_actor(os_user)


def _user_remove(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    removed: list[bool] = []

    async def remove(auth: Any) -> None:
        removed.append(await auth.delete_user(args.name, actor=_cli_actor()))

    code = _with_auth(settings, remove, "user_remove_failed", user=args.name)
    if code != 0:
        return code
    if not removed[0]:
        log.error("user_remove_failed", extra={"user": args.name, "reason": "no such user"})
        return 1
    log.info("user_removed", extra={"user": args.name})
    return 0


def _user_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    with contextlib.redirect_stdout(sys.stderr):
        start_command(settings)
    users: list[Any] = []

    async def fetch(auth: Any) -> None:
        users.extend(await auth.list_users())

    code = _with_auth(settings, fetch, "user_list_failed")
    if code == 0:
        print(f"{'NAME':<24} ROLE")
        for user in users:
            print(f"{user.name:<24} {user.role}")
    return code


def _token_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    # stdout carries the token alone, so that `TOKEN=$(iot-hub token create ...)` works.
    with contextlib.redirect_stdout(sys.stderr):
        start_command(settings)
    tokens: list[str] = []

    async def create(auth: Any) -> None:
        tokens.append(
            await auth.create_token(
                args.name, args.role, actor=_cli_actor(), expires_in_s=args.expires_in
            )
        )

    code = _with_auth(settings, create, "token_create_failed", token=args.name)
    if code == 0:
        expires = "never" if args.expires_in is None else f"in {args.expires_in} s"
        log.info("token_created", extra={"token": args.name, "role": args.role, "expires": expires})
        print(tokens[0], flush=True)
    return code


def _parse_expires_in(text: str) -> int:
    from hub.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _token_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    with contextlib.redirect_stdout(sys.stderr):
        start_command(settings)
    tokens: list[Any] = []

    async def fetch(auth: Any) -> None:
        tokens.extend(await auth.list_tokens())

    code = _with_auth(settings, fetch, "token_list_failed")
    if code != 0:
        return code
    now_ms = int(datetime.now(UTC).timestamp() * 1000)

    def when(ms: int | None, default: str = "-") -> str:
        if ms is None:
            return default
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    print(f"{'NAME':<24} {'ROLE':<8} {'STATE':<8} {'EXPIRES':<20} {'LAST USED':<20} CREATED")
    for t in tokens:
        print(
            f"{t.name:<24} {t.role:<8} {t.state(now_ms):<8} {when(t.expires_at, 'never'):<20} "
            f"{when(t.last_used_at):<20} {when(t.created_at)}"
        )
    return code


def _token_revoke(args: argparse.Namespace) -> int:
    settings = load_settings()
    start_command(settings)
    revoked: list[bool] = []

    async def revoke(auth: Any) -> None:
        revoked.append(await auth.revoke_token(args.name, actor=_cli_actor()))

    code = _with_auth(settings, revoke, "token_revoke_failed", token=args.name)
    if code != 0:
        return code
    if not revoked[0]:
        log.error("token_revoke_failed", extra={"token": args.name, "reason": "no active token"})
        return 1
    log.info("token_revoked", extra={"token": args.name})
    return 0


def _with_auth(
    settings: HubSettings,
    action: Callable[[Any], Awaitable[None]],
    failed_event: str,
    **fields: str,
) -> int:
    """Run ``action(PostgresAccounts)`` on a pool of its own; one log line and exit code on failure:
    2 for a refused value, 1 for the database (unreachable, or not migrated)."""
    import asyncpg

    from hub.storage.accounts import PostgresAccounts
    from hub.storage.read_model import connect_pool

    async def run() -> None:
        pool = await connect_pool(settings.database_url, min_size=1, max_size=1)
        try:
            await action(PostgresAccounts(pool))
        finally:
            await pool.close()

    try:
        asyncio.run(run())
    except ValueError as exc:
        log.error(failed_event, extra={**fields, "reason": str(exc)})
        return 2
    except asyncpg.UndefinedTableError:
        log.error(failed_event, extra={**fields, "reason": "run `iot-hub migrate` first"})
        return 1
    except _database_errors() as exc:
        log.error(failed_event, extra={**fields, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


def _add_user_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "user",
        help="manage dashboard users",
        description="Manage the users who log in to the dashboard.",
    )
    user_sub = p.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    add = user_sub.add_parser(
        "add",
        help="add a user, or set an existing user's password and role",
        description="Add a dashboard user, or replace an existing user's password and role "
        "(argon2id hash; the password never appears in the database, the logs or argv). "
        "Bootstrap the first administrator with `iot-hub user add admin --role admin`.",
    )
    _name_arg(add, "user")
    _role_arg(add, "user")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )
    add.set_defaults(func=_user_add)
    remove = user_sub.add_parser(
        "remove",
        help="remove a user",
        description="Remove the dashboard user NAME: their open sessions end at once. Exits 1 "
        "if there is no such user. Audited, with the actor recorded as the CLI.",
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=_user_remove)
    listing = user_sub.add_parser(
        "list", help="list the users and their roles", description="List users and roles."
    )
    listing.set_defaults(func=_user_list)


def _add_token_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "token",
        help="manage API bearer tokens",
        description="Manage the bearer tokens of the REST and WebSocket API.",
    )
    token_sub = p.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = token_sub.add_parser(
        "create",
        help="create a token and print it once",
        description="Create a bearer token and print it, alone, on stdout (the settings go to "
        "stderr). It is shown this once: only its SHA-256 is stored. Use it as "
        "`Authorization: Bearer <token>`.",
    )
    _name_arg(create, "token")
    _role_arg(create, "token")
    create.add_argument(
        "--expires-in",
        type=_parse_expires_in,
        default=None,
        metavar="DURATION",
        help="the token stops working after this long: e.g. 90m, 12h, 30d, 2w (default: never)",
    )
    create.set_defaults(func=_token_create)
    listing = token_sub.add_parser(
        "list",
        help="list tokens with their role, state and expiry",
        description="List every token (active, expired and revoked) with its role, expiry, "
        "last use and creation; never the token itself, which is not stored.",
    )
    listing.set_defaults(func=_token_list)
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a token",
        description="Revoke the active token NAME: it stops working at once. Exits 1 if there "
        "is no active token of that name.",
    )
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(func=_token_revoke)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iot-hub",
        description="Hub: Kafka in, PostgreSQL and Redis out, through Faust agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_migrate_parser(sub)
    _add_worker_parser(sub)
    _add_rollup_parser(sub)
    _add_web_parser(sub)
    _add_user_parser(sub)
    _add_token_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
