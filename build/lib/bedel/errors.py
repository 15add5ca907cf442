"""Errors are named values: services raise them, one handler renders the JSON shape."""


class BedelError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after


class NotFound(BedelError):
    status = 404
    code = "not_found"


class Conflict(BedelError):
    status = 409
    code = "conflict"


class Unauthorized(BedelError):
    status = 401
    code = "unauthorized"


class Forbidden(BedelError):
    status = 403
    code = "forbidden"


class UnsupportedMediaType(BedelError):
    status = 415
    code = "unsupported_media_type"


class InvalidInput(BedelError):
    status = 422
    code = "invalid_input"


class RateLimited(BedelError):
    status = 429
    code = "rate_limited"


class UpstreamUnavailable(BedelError):
    """The LLM did not answer; the question is already stored."""

    status = 503
    code = "llm_unavailable"
