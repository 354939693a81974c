"""Console tokens and sessions: only hashes of the secrets are stored; expired sessions are refused and purged."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update

from sync.store.tables import console_sessions, console_tokens

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
        digest(session_id), identity, role, method, secrets.token_urlsafe(32), now + lifetime, oidc_state, oidc_nonce
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
        )
    )
    return session_id, session


def find_session(conn: Connection, session_id: str, now: datetime) -> Session | None:
    """The unexpired session of this cookie value, or None."""
    row = conn.execute(select(console_sessions).where(console_sessions.c.id_hash == digest(session_id))).first()
    if row is None:
        return None
    expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if expires_at <= now:
        return None
    return Session(
        row.id_hash, row.identity, row.role, row.method, row.csrf_token, expires_at, row.oidc_state, row.oidc_nonce
    )


def end_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))


def purge_expired(conn: Connection, now: datetime) -> int:
    return int(conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now)).rowcount)
