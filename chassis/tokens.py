"""Staff identity: bearer tokens are JWTs, verified here (PyJWT) and turned into who and what.

A token must carry `sub` (the person), `roles` (a list of role names, e.g. ["kitchen"]),
`exp`, and the configured `iss` and `aud`; a small leeway absorbs clock skew. It is signed
either with an HS256 secret shared with whoever issues tokens (development: `make token`), or
by an identity provider whose public keys (RS256 or ES256) are in a JWKS file. The algorithm
is never taken from the token: a verifier with a secret accepts HS256 only, one with public
keys accepts only the algorithm of the key the token names, so `alg: none` and key confusion
(an HS256 token "signed" with a public key) are refused. A refusal says what was wrong and
never repeats the token.

    python -m chassis.tokens kitchen [--sub ana] [--ttl 8h]   print a development token
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

# The development key: `make run`, the tests and `make token`. Production refuses it.
DEV_SECRET = "dev-jwt-secret-change-me-0123456789abcdef"
DEV_ISSUER = "comanda-dev"
AUDIENCE = "comanda"
PUBLIC_KEY_ALGORITHMS = frozenset({"RS256", "ES256"})


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or not for us (one line, no token)."""


@dataclass(frozen=True)
class Identity:
    """Who sent a request: the token's subject and roles."""

    subject: str
    roles: frozenset[str]


class TokenVerifier:
    """Verifies staff JWTs against an HS256 secret or the public keys of a JWKS."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        secret: str = "",
        jwks: Mapping[str, Any] | None = None,
        leeway: float = 30.0,
    ) -> None:
        if bool(secret) == bool(jwks):
            raise ValueError("give either an HS256 secret or a JWKS of public keys")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._secret = secret
        self._keys: dict[str, jwt.PyJWK] = {}
        if jwks:
            for key in jwt.PyJWKSet.from_dict(dict(jwks)).keys:
                if key.algorithm_name not in PUBLIC_KEY_ALGORITHMS or key.key_type == "oct":
                    raise ValueError(
                        f"JWKS key {key.key_id!r}: only RS256 and ES256 public keys are accepted"
                    )
                self._keys[key.key_id or ""] = key

    @classmethod
    def from_jwks_file(
        cls, path: str | Path, issuer: str, audience: str, leeway: float = 30.0
    ) -> TokenVerifier:
        try:
            jwks = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the JWKS file {path}: {exc}") from None
        return cls(issuer, audience, jwks=jwks, leeway=leeway)

    def verify(self, token: str) -> Identity:
        """The identity a token proves; InvalidToken saying what is wrong otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidToken("the token is not a well-formed JWT") from None
        algorithm = str(header.get("alg"))[:16]  # named in refusals: keep it short
        kid = str(header.get("kid") or "")[:64]
        if self._secret:
            key: Any = self._secret
            if algorithm != "HS256":
                raise InvalidToken(f"tokens must be signed with HS256, not {algorithm!r}")
        else:
            jwk = self._keys.get(kid)
            if jwk is None:
                raise InvalidToken(f"the token's key id {kid!r} is not known")
            if algorithm != jwk.algorithm_name:
                raise InvalidToken(
                    f"the token's algorithm {algorithm!r} does not match its key "
                    f"({jwk.algorithm_name})"
                )
            key = jwk.key
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not for audience {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token was not issued by {self.issuer!r}") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is not valid: {type(exc).__name__}") from None
        subject, roles = claims.get("sub"), claims.get("roles", [])
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidToken("the token's 'sub' claim is empty")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("the token's 'roles' claim must be a list of role names")
        return Identity(subject, frozenset(roles))


def sign(
    subject: str,
    roles: Sequence[str],
    secret: str = DEV_SECRET,
    issuer: str = DEV_ISSUER,
    audience: str = AUDIENCE,
    ttl: float = 8 * 3600,
    now: float | None = None,
) -> str:
    """An HS256 token (development and tests; production tokens come from an identity
    provider)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "roles": list(roles),
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(ttl),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def _duration(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return int(value[:-1]) * units[value[-1]]
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r}: expected seconds or a number with s, m, h, d")


def main(argv: Sequence[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(
        prog="make token", description="Print a development staff token (HS256, JWT_SECRET)."
    )
    parser.add_argument("roles", help="role names, comma-separated (kitchen, manager)")
    parser.add_argument("--sub", default="dev", help="who the token is for (default: dev)")
    parser.add_argument("--ttl", type=_duration, default=8 * 3600, help="lifetime (default 8h)")
    args = parser.parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if not roles:
        parser.error("give at least one role, e.g. kitchen")
    print(
        sign(
            args.sub,
            roles,
            secret=os.environ.get("JWT_SECRET") or DEV_SECRET,
            issuer=os.environ.get("JWT_ISSUER") or DEV_ISSUER,
            audience=os.environ.get("JWT_AUDIENCE") or AUDIENCE,
            ttl=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
