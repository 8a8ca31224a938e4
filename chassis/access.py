"""Who may call an RPC, as its contract says: the `audience` and `roles` method options of
comanda.options.v1, read once from the descriptors. The services enforce it (`authorize`, with
the staff token verifier); the gateway documents it (OpenAPI, /docs).

`authorize` decides, for one call, who the caller is: a staff method needs a valid token
(UNAUTHENTICATED otherwise) holding one of the method's roles (PERMISSION_DENIED otherwise); a
public method takes an optional one (a staff member cancelling an order for a customer), which,
when sent, must be valid too. Refusals name what was wrong, never the token.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

from chassis.errors import PermissionDenied, Unauthenticated
from chassis.tokens import Identity, InvalidToken, TokenVerifier
from comanda.options.v1 import options_pb2

PUBLIC, STAFF, PROVIDER = (
    options_pb2.AUDIENCE_PUBLIC,
    options_pb2.AUDIENCE_STAFF,
    options_pb2.AUDIENCE_PROVIDER,
)


@dataclass(frozen=True)
class Access:
    audience: int  # comanda.options.v1.Audience; never UNSPECIFIED (that reads as PUBLIC)
    roles: tuple[str, ...]  # for STAFF: any one of these may call it

    @property
    def staff(self) -> bool:
        return self.audience == STAFF


def of_method(method: MethodDescriptor) -> Access:
    options = method.GetOptions()
    audience = int(options.Extensions[options_pb2.audience]) or PUBLIC
    return Access(audience, tuple(options.Extensions[options_pb2.roles]))


@functools.cache
def of_path(full_method: str) -> Access:
    """The access rule of `/package.Service/Method`; PUBLIC when the method is unknown."""
    try:
        service, method = full_method.lstrip("/").split("/", 1)
        found = descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]
    except (KeyError, ValueError):
        return Access(PUBLIC, ())
    return of_method(found)


def authorize(
    method: str, rule: Access, authorization: str, verifier: TokenVerifier
) -> Identity | None:
    """The identity of the caller of `method` (its short name, for messages), or None for an
    anonymous call of a public method; Unauthenticated or PermissionDenied otherwise."""
    identity = identify(method, rule, authorization, verifier)
    permit(method, rule, identity)
    return identity


def identify(
    method: str, rule: Access, authorization: str, verifier: TokenVerifier
) -> Identity | None:
    """Who the `authorization` header proves (None: nobody, for a public method);
    Unauthenticated when a staff method has no valid token, or a token is not valid."""
    if not authorization:
        if rule.staff:
            raise Unauthenticated(
                f"{method} is for staff with role {' or '.join(rule.roles)}: send "
                "'authorization: Bearer <token>'"
            )
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(f"{method}: the authorization header must be 'Bearer <token>'")
    try:
        return verifier.verify(token.strip())
    except InvalidToken as exc:
        raise Unauthenticated(f"{method}: {exc}") from None


def permit(method: str, rule: Access, identity: Identity | None) -> None:
    """PermissionDenied unless `identity` holds one of a staff method's roles."""
    if not rule.staff:
        return
    if identity is None:  # identify() refuses this first; kept for callers that skip it
        raise Unauthenticated(f"{method} is for staff")
    if not identity.roles & set(rule.roles):
        held = ", ".join(sorted(identity.roles)) or "none"
        raise PermissionDenied(
            f"{method} needs role {' or '.join(rule.roles)}; the token of {identity.subject!r} "
            f"has roles: {held}"
        )
