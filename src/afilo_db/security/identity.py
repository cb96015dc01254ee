"""Identity to row-level security in one call: a Clerk session token in, a Session acting for
that user out.

The token (a JWT signed with RS256) is checked against Clerk's published keys (the JWKS at
CLERK_JWKS_URL, fetched once and cached, fetched again for a key id it does not know), its
expiry and not-before times, its issuer (CLERK_ISSUER) and, when CLERK_AUTHORIZED_PARTIES is
set, the origin it was issued for (`azp`). Its subject is the Clerk user id given to `as_user`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from afilo_db.config import Settings, get_settings
from afilo_db.errors import ForbiddenError, OperationError, ValidationError
from afilo_db.once import once_per_arguments
from afilo_db.security.context import as_user

ALGORITHMS = ("RS256",)
# Clock drift allowed between Clerk and this machine.
LEEWAY_SECONDS = 5
JWKS_CACHE_SECONDS = 300


@dataclass
class ClerkTokenVerifier:
    jwks_url: str
    issuer: str | None = None
    authorized_parties: Sequence[str] = ()
    _keys: jwt.PyJWKClient = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys = jwt.PyJWKClient(
            self.jwks_url, cache_keys=True, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS
        )

    def clerk_user_id(self, token: str | None) -> str:
        """The Clerk user id the token was issued to. ForbiddenError for a missing, malformed,
        expired, not yet valid, forged or foreign token; OperationError when Clerk's keys
        cannot be fetched."""
        if not token:
            raise ForbiddenError("no session token")
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(ALGORITHMS),
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub"], "verify_aud": False},
            )
        except jwt.PyJWKClientConnectionError as error:
            raise OperationError(f"Clerk's keys could not be fetched: {error}") from error
        except (jwt.PyJWTError, jwt.PyJWKClientError) as error:
            raise ForbiddenError(f"invalid session token: {error}") from error
        party = claims.get("azp")
        if self.authorized_parties and party not in self.authorized_parties:
            raise ForbiddenError(f"invalid session token: issued for {party!r}")
        subject = claims["sub"]
        if not isinstance(subject, str):
            raise ForbiddenError("invalid session token: its subject is not a user id")
        return subject


@once_per_arguments
def _verifier(jwks_url: str, issuer: str | None, parties: tuple[str, ...]) -> ClerkTokenVerifier:
    return ClerkTokenVerifier(jwks_url, issuer, parties)


def verifier_from_settings(settings: Settings | None = None) -> ClerkTokenVerifier:
    """The verifier of CLERK_JWKS_URL / CLERK_ISSUER / CLERK_AUTHORIZED_PARTIES, one per process
    (so its key cache is shared)."""
    settings = settings or get_settings()
    if settings.clerk_jwks_url is None:
        raise OperationError(
            "CLERK_JWKS_URL is not set: https://<frontend-api>/.well-known/jwks.json"
        )
    return _verifier(
        settings.clerk_jwks_url, settings.clerk_issuer, tuple(settings.clerk_authorized_parties)
    )


def user_session(
    engine: Engine, token: str | None, verifier: ClerkTokenVerifier | None = None
) -> Session:
    """A new Session on the application's engine, its transaction already acting for the user
    the Clerk session token names (`as_user`). The caller closes it (and commits what it
    writes). ForbiddenError, before any connection is taken, for a token that does not prove a
    user."""
    clerk_user_id = (verifier or verifier_from_settings()).clerk_user_id(token)
    session = Session(engine, expire_on_commit=False)
    try:
        as_user(session, clerk_user_id)
    except ValidationError as error:
        session.close()
        raise ForbiddenError("invalid session token: its subject is not a Clerk user id") from error
    except BaseException:
        session.close()
        raise
    return session
