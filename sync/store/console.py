"""Console tokens, sessions and sign-in attempts: only hashes of the secrets are stored; expired sessions are purged."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from sync.store.tables import console_sessions, console_sign_in_attempts, console_tokens

ROLES = ("admin", "viewer")


def digest(secret: str) -> str:
    """SHA-256 of a random secret (tokens and session ids are 32 random bytes: no slow hash needed)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleToken:
    id: int
    label: str
    role: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser (role None: an identity provider sign-in still under way)."""

    id_hash: str
    identity: str
    role: str | None
    method: str
    csrf_token: str
    expires_at: datetime
    oidc_state: str | None
    oidc_nonce: str | None
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class SignInAttempts:
    """Token sign-in attempts of one client address since ``window_start`` (this one included)."""

    attempts: int
    window_start: datetime


def new_token(conn: Connection, *, label: str, role: str, by: str, now: datetime) -> tuple[str, ConsoleToken]:
    """Create a token; returns the secret (shown once, never stored) and what is stored about it."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    secret = "hbc_" + secrets.token_urlsafe(32)
    inserted = conn.execute(
        insert(console_tokens).values(token_hash=digest(secret), label=label, role=role, created_at=now, created_by=by)
    )
    token_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
    return secret, ConsoleToken(token_id, label, role, now, by, None, None)


def token_for(conn: Connection, secret: str, now: datetime) -> ConsoleToken | None:
    """The live token whose secret this is (its last use recorded), or None."""
    row = conn.execute(
        select(console_tokens).where(
            console_tokens.c.token_hash == digest(secret), console_tokens.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    conn.execute(update(console_tokens).where(console_tokens.c.id == row.id).values(last_used_at=now))
    return ConsoleToken(row.id, row.label, row.role, row.created_at, row.created_by, now, None)


def list_tokens(conn: Connection) -> list[ConsoleToken]:
    return [
        ConsoleToken(r.id, r.label, r.role, r.created_at, r.created_by, r.last_used_at, r.revoked_at)
        for r in conn.execute(select(console_tokens).order_by(console_tokens.c.id))
    ]


def revoke_token(conn: Connection, token_id: int, now: datetime) -> bool:
    """Revoke token ``token_id``; False when there is no such live token."""
    changed = conn.execute(
        update(console_tokens)
        .where(console_tokens.c.id == token_id, console_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    return bool(changed)


def open_session(
    conn: Connection,
    *,
    identity: str,
    role: str | None,
    method: str,
    now: datetime,
    lifetime: timedelta,
    oidc_state: str | None = None,
    oidc_nonce: str | None = None,
) -> tuple[str, Session]:
    """Start a session; returns the id for the browser's cookie (only its hash is stored)."""
    session_id = secrets.token_urlsafe(32)
    session = Session(
        digest(session_id),
        identity,
        role,
        method,
        secrets.token_urlsafe(32),
        now + lifetime,
        oidc_state,
        oidc_nonce,
        now,
    )
    conn.execute(
        insert(console_sessions).values(
            id_hash=session.id_hash,
            identity=identity,
            role=role,
            method=method,
            csrf_token=session.csrf_token,
            created_at=now,
            expires_at=session.expires_at,
            oidc_state=oidc_state,
            oidc_nonce=oidc_nonce,
            last_seen_at=now,
        )
    )
    return session_id, session


def _aware(value: datetime, like: datetime) -> datetime:
    # SQLite hands back naive datetimes: they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=like.tzinfo)


def get_session(conn: Connection, session_id: str, now: datetime) -> Session | None:
    """The session of this cookie value, expired or not, or None."""
    row = conn.execute(select(console_sessions).where(console_sessions.c.id_hash == digest(session_id))).first()
    if row is None:
        return None
    return Session(
        row.id_hash,
        row.identity,
        row.role,
        row.method,
        row.csrf_token,
        _aware(row.expires_at, now),
        row.oidc_state,
        row.oidc_nonce,
        _aware(row.last_seen_at, now),
    )


def find_session(conn: Connection, session_id: str, now: datetime) -> Session | None:
    """The unexpired session of this cookie value, or None."""
    session = get_session(conn, session_id, now)
    if session is None or session.expires_at <= now:
        return None
    return session


def touch_session(conn: Connection, id_hash: str, now: datetime) -> None:
    """Record a request of the session (the idle timeout counts from the last one)."""
    conn.execute(update(console_sessions).where(console_sessions.c.id_hash == id_hash).values(last_seen_at=now))


def end_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))


def purge_expired(conn: Connection, now: datetime, idle: timedelta | None = None) -> int:
    """Delete sessions past their maximum age, and signed-in ones idle for ``idle`` or longer."""
    ended = console_sessions.c.expires_at <= now
    if idle is not None:
        ended = or_(ended, console_sessions.c.role.is_not(None) & (console_sessions.c.last_seen_at <= now - idle))
    return int(conn.execute(delete(console_sessions).where(ended)).rowcount)


def count_sign_in(conn: Connection, address: str, now: datetime, window: timedelta) -> SignInAttempts:
    """Count one token sign-in attempt of ``address``: a new window opens when the last one has ended.

    The count is a single UPDATE (or the INSERT of a new window) so that console processes sharing the
    database never lose each other's attempts.
    """
    table = console_sign_in_attempts
    conn.execute(delete(table).where(table.c.window_start <= now - window))
    for _ in range(2):
        counted = conn.execute(
            update(table).where(table.c.address == address).values(attempts=table.c.attempts + 1)
        ).rowcount
        if counted:
            break
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(address=address, window_start=now, attempts=1))
            break
        except IntegrityError:
            continue  # another process opened this address's window first: count on its row
    row = conn.execute(select(table.c.attempts, table.c.window_start).where(table.c.address == address)).one()
    return SignInAttempts(int(row.attempts), _aware(row.window_start, now))


def clear_sign_ins(conn: Connection, address: str) -> None:
    """Forget the attempts of ``address`` (it has just signed in)."""
    conn.execute(delete(console_sign_in_attempts).where(console_sign_in_attempts.c.address == address))
