"""Domain errors, independent of any transport.

Handlers raise these; the gRPC interceptor turns each into its status code with a message
that names the field, the id or the states involved, and the gateway turns that into HTTP.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a client can cause and correct."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """A field of the request is malformed (INVALID_ARGUMENT)."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class NotFound(DomainError):
    """The named resource does not exist (NOT_FOUND)."""

    def __init__(self, resource: str, resource_id: str) -> None:
        super().__init__(f"{resource} {resource_id!r} not found")
        self.resource = resource
        self.resource_id = resource_id


class AlreadyExists(DomainError):
    """The resource being created already exists (ALREADY_EXISTS)."""

    def __init__(self, resource: str, description: str) -> None:
        super().__init__(f"{resource} already exists: {description}")
        self.resource = resource


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows the operation (FAILED_PRECONDITION)."""

    def __init__(self, subject: str, current: str, wanted: str, hint: str = "") -> None:
        message = f"{subject} is {current}; cannot {wanted}"
        super().__init__(f"{message} ({hint})" if hint else message)
        self.subject = subject
        self.current = current
        self.wanted = wanted


class Aborted(DomainError):
    """A concurrent change won; the caller may read again and retry (ABORTED)."""


class Unauthenticated(DomainError):
    """Credentials are missing or wrong (UNAUTHENTICATED)."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this (PERMISSION_DENIED)."""
