"""Staff tokens: what the verifier accepts, and every way a token is refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chassis import tokens
from chassis.tokens import Identity, InvalidToken, TokenVerifier

SECRET = "unit-test-secret-0123456789abcdef0123"
ISSUER, AUDIENCE = "https://id.example/realms/comanda", "comanda"


def hs_verifier(**kwargs) -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, secret=SECRET, **kwargs)


def claims(**overrides):
    now = int(time.time())
    values = {
        "sub": "ana",
        "roles": ["kitchen"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def refusal(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    message = str(caught.value)
    signature = token.split(".")[-1]
    assert token not in message, "never echo the token"
    assert not signature or signature not in message
    return message


def test_a_valid_token_gives_subject_and_roles():
    token = jwt.encode(claims(roles=["kitchen", "manager"]), SECRET, algorithm="HS256")
    assert hs_verifier().verify(token) == Identity("ana", frozenset({"kitchen", "manager"}))


def test_the_development_signer_makes_tokens_the_development_verifier_accepts():
    token = tokens.sign("bia", ["manager"])
    verifier = TokenVerifier(tokens.DEV_ISSUER, tokens.AUDIENCE, secret=tokens.DEV_SECRET)
    assert verifier.verify(token) == Identity("bia", frozenset({"manager"}))


def test_expired_token_is_refused_past_the_leeway_only():
    late = jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    assert hs_verifier(leeway=30).verify(late).subject == "ana", "clock skew is tolerated"
    assert "expired" in refusal(hs_verifier(leeway=5), late)


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_required_claims(claim):
    token = jwt.encode(claims(**{claim: None}), SECRET, algorithm="HS256")
    assert claim in refusal(hs_verifier(), token)


def test_wrong_issuer_and_audience():
    assert "issued by" in refusal(
        hs_verifier(), jwt.encode(claims(iss="someone-else"), SECRET, algorithm="HS256")
    )
    assert "audience" in refusal(
        hs_verifier(), jwt.encode(claims(aud="another-app"), SECRET, algorithm="HS256")
    )


def test_forged_signature():
    forged = jwt.encode(claims(), "another-secret-0123456789abcdef012345", algorithm="HS256")
    assert "signature" in refusal(hs_verifier(), forged)


def test_alg_none_is_refused():
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    assert "HS256" in refusal(hs_verifier(), unsigned)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "Bearer x.y.z"])
def test_malformed(token):
    with pytest.raises(InvalidToken, match=r"well-formed|not valid"):
        hs_verifier().verify(token)


@pytest.mark.parametrize("roles", ["kitchen", [1, 2], {"kitchen": True}])
def test_roles_must_be_a_list_of_names(roles):
    token = jwt.encode(claims(roles=roles), SECRET, algorithm="HS256")
    assert "roles" in refusal(hs_verifier(), token)


def test_empty_subject():
    token = jwt.encode(claims(sub=" "), SECRET, algorithm="HS256")
    assert "sub" in refusal(hs_verifier(), token)


# -- public keys from a JWKS (an identity provider) -------------------------------------


def jwk(private_key, kid: str) -> dict:
    public = private_key.public_key()
    algorithm = jwt.algorithms.RSAAlgorithm if kid.startswith("rsa") else jwt.algorithms.ECAlgorithm
    value = json.loads(algorithm.to_jwk(public))
    value["kid"] = kid
    return value


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
    }


@pytest.fixture
def jwks_verifier(keys, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(k, kid) for kid, k in keys.items()]}))
    return TokenVerifier.from_jwks_file(path, ISSUER, AUDIENCE)


@pytest.mark.parametrize(("kid", "algorithm"), [("rsa-1", "RS256"), ("ec-1", "ES256")])
def test_identity_provider_tokens(keys, jwks_verifier, kid, algorithm):
    token = jwt.encode(claims(), keys[kid], algorithm=algorithm, headers={"kid": kid})
    assert jwks_verifier.verify(token) == Identity("ana", frozenset({"kitchen"}))


def test_unknown_key_id(keys, jwks_verifier):
    token = jwt.encode(claims(), keys["rsa-1"], algorithm="RS256", headers={"kid": "rsa-2"})
    assert "key id" in refusal(jwks_verifier, token)


def test_key_confusion_hs256_signed_with_the_public_key_is_refused(keys, jwks_verifier):
    """The classic attack: take the provider's public key (it is public) and use it as an
    HMAC secret. The verifier never lets the token choose HS256 for a public key."""
    public_pem = (
        keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode()
    ).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    ).rstrip(b"=")
    token = b".".join([header, payload, signature]).decode()
    assert "does not match its key" in refusal(jwks_verifier, token)


def test_a_token_signed_by_another_provider_key(jwks_verifier):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "rsa-1"})
    assert "signature" in refusal(jwks_verifier, token)


def test_a_jwks_with_a_shared_secret_is_rejected(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}))
    with pytest.raises(ValueError, match="RS256 and ES256"):
        TokenVerifier.from_jwks_file(path, ISSUER, AUDIENCE)


def test_make_token_prints_a_verifiable_token(capsys, monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("JWT_ISSUER", raising=False)
    monkeypatch.delenv("JWT_AUDIENCE", raising=False)
    assert tokens.main(["kitchen,manager", "--sub", "ana", "--ttl", "1h"]) == 0
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(tokens.DEV_ISSUER, tokens.AUDIENCE, secret=tokens.DEV_SECRET)
    identity = verifier.verify(token)
    assert identity == Identity("ana", frozenset({"kitchen", "manager"}))
    assert (
        3500 < jwt.decode(token, options={"verify_signature": False})["exp"] - time.time() <= 3600
    )
