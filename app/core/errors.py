"""Domain errors raised by services; the web layer maps them to HTTP answers."""


class DomainError(Exception):
    """Base class: a readable message meant for the user."""

    status_code = 400

    def __init__(self, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403


class Conflict(DomainError):
    """A concurrent change or a uniqueness clash; nothing was overwritten."""

    status_code = 409


class InvalidInput(DomainError):
    status_code = 422


class Unauthenticated(DomainError):
    status_code = 401


class RateLimited(DomainError):
    status_code = 429
