"""Forward-only SQL migrations from ``schemas/migrations``, applied under an advisory lock."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from pipeline.errors import MigrationError
from pipeline.log import get_logger

# pg_advisory_lock key: the first 8 bytes of sha256("modstream.migrate") as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"modstream.migrate").digest()[:8], "big", signed=True)
_NAME = re.compile(r"^(?P<version>\d{4}_[a-z0-9_]+)\.sql$")

log = get_logger(__name__)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version (file name without ``.sql``), text and sha256 checksum."""

    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    """Every ``schemas/migrations/NNNN_name.sql``, in version order."""
    folder = resources.files("schemas").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r} must be named NNNN_lowercase_name.sql"
            )
        found.append(Migration(match["version"], entry.read_text("utf-8")))
    return sorted(found, key=lambda migration: migration.version)


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied.

    Safe to run from several processes at once (a session advisory lock serialises them) and
    idempotent. Raises :class:`MigrationError` if an applied file was edited afterwards.
    """
    migrations = load_migrations()
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise MigrationError(
            f"cannot connect to Postgres ({type(exc).__name__}: {exc}); start it with "
            "`modstream up` or fix MODSTREAM_POSTGRES_DSN"
        ) from None
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            applied = {row["version"]: row["checksum"] for row in rows}
            _check_applied(migrations, applied)
            for migration in migrations:
                if migration.version in applied:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                            migration.version,
                            migration.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.version} failed and was rolled back: "
                        f"{type(exc).__name__}: {exc}; fix the SQL (it was not applied) and rerun"
                    ) from exc
                log.info("migration.applied", version=migration.version)
                applied_now.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()
    return applied_now


def _check_applied(migrations: list[Migration], applied: dict[str, str]) -> None:
    known = {migration.version: migration for migration in migrations}
    for version, checksum in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            log.warning("migration.unknown_applied", version=version)
        elif migration.checksum != checksum:
            raise MigrationError(
                f"migration {version} was changed after it was applied (checksum {checksum[:12]} "
                f"in the database, {migration.checksum[:12]} on disk); migrations are "
                "forward-only: restore the file and add a new migration instead"
            )
