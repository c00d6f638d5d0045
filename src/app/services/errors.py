"""Domain errors raised by services; routes turn them into clear 4xx responses."""


class DomainError(Exception):
    """Base class: `status_code` is what the HTTP layer answers with."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(DomainError):
    status_code = 404


class ConflictError(DomainError):
    status_code = 409


class InvalidInputError(DomainError):
    status_code = 422


class ForbiddenError(DomainError):
    status_code = 403


class ServiceUnavailableError(DomainError):
    """The database pool is exhausted or unreachable: clients should retry shortly."""

    status_code = 503


class RateLimitedError(DomainError):
    """Too many requests (or a spent budget): `retry_after` seconds until it may work."""

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
