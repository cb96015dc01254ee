"""A Clerk session token in, a Session acting for its user out: checked against keys published
as a JWKS (served here on a loopback port, as Clerk serves them), cached; anything but a valid,
current token signed by those keys for this issuer is refused with the forbidden error. The
FastAPI example of docs/security.md runs as written."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, text

from afilo_db.config import get_settings
from afilo_db.db.engine import dispose_engine
from afilo_db.errors import ForbiddenError
from afilo_db.security.identity import ClerkTokenVerifier, user_session
from tests.security.conftest import Marketplace, app_engine

ISSUER = "https://clerk.afilo.test"
SECURITY_PAGE = Path(__file__).parents[2] / "docs" / "security.md"


@dataclass
class Keys:
    url: str
    kid: str
    private: rsa.RSAPrivateKey
    fetches: list[str]


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys() -> Iterator[Keys]:
    private = _new_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "ins_key1", "use": "sig", "alg": "RS256"}]})
    fetches: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            body = document.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Keys(f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json", "ins_key1",
               private, fetches)  # fmt: skip
    httpd.shutdown()


def token(keys: Keys, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"sub": "user_alice000001", "iss": ISSUER, "iat": now, "nbf": now - 5,
              "exp": now + 60, "azp": "https://afilo.test", "sid": "sess_1"}  # fmt: skip
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, keys.private, algorithm="RS256", headers={"kid": keys.kid})


@pytest.fixture
def verifier(keys: Keys) -> ClerkTokenVerifier:
    return ClerkTokenVerifier(keys.url, ISSUER, ("https://afilo.test",))


@pytest.fixture
def engine(marketplace: Marketplace) -> Iterator[Engine]:
    engine = app_engine(marketplace.app_url)
    yield engine
    engine.dispose()


def test_a_valid_token_gives_a_session_acting_for_its_user(
    engine: Engine, verifier: ClerkTokenVerifier, keys: Keys, marketplace: Marketplace
) -> None:
    with user_session(engine, token(keys), verifier) as session:
        assert session.execute(text("SELECT current_clerk_user_id()")).scalar_one() == (
            "user_alice000001"
        )
        carts = session.execute(text("SELECT id FROM cart_items")).scalars().all()
        assert carts == marketplace.alice.rows["cart_items"]


def test_the_keys_are_fetched_once_and_cached(keys: Keys) -> None:
    verifier = ClerkTokenVerifier(keys.url, ISSUER)
    before = len(keys.fetches)
    for _ in range(5):
        assert verifier.clerk_user_id(token(keys)) == "user_alice000001"
    assert len(keys.fetches) - before == 1


def _other_key_token(keys: Keys) -> str:
    now = int(time.time())
    claims = {"sub": "user_alice000001", "iss": ISSUER, "iat": now, "exp": now + 60}
    return jwt.encode(claims, _new_key(), algorithm="RS256", headers={"kid": keys.kid})


def _hs256_with_the_public_key(keys: Keys) -> str:
    """Algorithm confusion: the public key used as an HMAC secret."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.kid}
    claims = {"sub": "user_bob000001", "iss": ISSUER, "iat": now, "exp": now + 60}
    segments = [
        jwt.utils.base64url_encode(json.dumps(part).encode()).decode() for part in (header, claims)
    ]
    return ".".join([*segments, "c2lnbmF0dXJl"])


FORGED = {
    "missing": lambda keys: None,
    "empty": lambda keys: "",
    "garbage": lambda keys: "not.a.token",
    "expired": lambda keys: token(keys, exp=int(time.time()) - 60, iat=int(time.time()) - 120),
    "not yet valid": lambda keys: token(keys, nbf=int(time.time()) + 600),
    "signed by another key": _other_key_token,
    "unknown key id": lambda keys: jwt.encode(
        {
            "sub": "user_alice000001",
            "iss": ISSUER,
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        keys.private,
        algorithm="RS256",
        headers={"kid": "ins_unknown"},
    ),
    "another issuer": lambda keys: token(keys, iss="https://evil.test"),
    "another party": lambda keys: token(keys, azp="https://evil.test"),
    "no expiry": lambda keys: token(keys, exp=None),
    "no subject": lambda keys: token(keys, sub=None),
    "subject not a user id": lambda keys: token(keys, sub="user_alice'; --"),
    "tampered claims": lambda keys: ".".join(
        [
            token(keys).split(".")[0],
            jwt.utils.base64url_encode(
                json.dumps(
                    {
                        "sub": "user_bob000001",
                        "iss": ISSUER,
                        "exp": int(time.time()) + 60,
                        "iat": int(time.time()),
                    }
                ).encode()
            ).decode(),
            token(keys).split(".")[2],
        ]
    ),
    "hs256 with the public key": _hs256_with_the_public_key,
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_anything_else_is_forbidden(
    engine: Engine, verifier: ClerkTokenVerifier, keys: Keys, name: str
) -> None:
    with pytest.raises(ForbiddenError):
        user_session(engine, FORGED[name](keys), verifier)


def _documented_fastapi_example() -> str:
    found = re.search(
        r"<!-- fastapi-example -->\s*```python\n(.*?)```", SECURITY_PAGE.read_text(), re.DOTALL
    )
    assert found is not None, (
        "docs/security.md's FastAPI example is marked <!-- fastapi-example -->"
    )
    return found.group(1)


def test_the_documented_fastapi_example(
    keys: Keys, marketplace: Marketplace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("DATABASE_URL", marketplace.app_url)
    monkeypatch.setenv("CLERK_JWKS_URL", keys.url)
    monkeypatch.setenv("CLERK_ISSUER", ISSUER)
    get_settings.cache_clear()
    dispose_engine()
    namespace: dict[str, Any] = {}
    try:
        exec(compile(_documented_fastapi_example(), "docs/security.md", "exec"), namespace)  # noqa: S102
        with TestClient(namespace["app"]) as client:
            alice = client.get("/cart", headers={"Authorization": f"Bearer {token(keys)}"})
            assert alice.status_code == 200
            assert alice.json() == [str(i) for i in marketplace.alice.rows["cart_items"]]
            bob = token(keys, sub=marketplace.bob.clerk_user_id)
            assert client.get("/cart", headers={"Authorization": f"Bearer {bob}"}).json() == [
                str(i) for i in marketplace.bob.rows["cart_items"]
            ]
            assert client.get("/cart").status_code == 401
            forged = FORGED["signed by another key"](keys)
            assert (
                client.get("/cart", headers={"Authorization": f"Bearer {forged}"}).status_code
                == 401
            )
    finally:
        dispose_engine()
        get_settings.cache_clear()
    with psycopg.connect(marketplace.owner_url) as owner:
        assert owner.execute("SELECT count(*) FROM cart_items").fetchone() == (2,)
