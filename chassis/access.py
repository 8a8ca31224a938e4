"""Who may call an RPC, as its contract says: the `audience` and `roles` method options of
comanda.options.v1, read once from the descriptors. The services enforce it; the gateway
documents it (OpenAPI, /docs)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

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
