"""Engine errors, always rendered in the OpenAI error shape.

    {"error": {"message": "...", "type": "invalid_request_error" | "server_error", "code": "..."}}

4xx = the caller can fix it (type invalid_request_error), 5xx = the engine failed (server_error).
"""

from __future__ import annotations

from typing import Any, Optional

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class EngineError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: Optional[str] = None,
        type_: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.type = type_ or (INVALID_REQUEST if status < 500 else SERVER_ERROR)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type_: str, code: str, param: Optional[str] = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if param is not None:
        err["param"] = param
    return {"error": err}


# Convenience constructors -------------------------------------------------------------------

def bad_request(code: str, message: str, param: Optional[str] = None) -> EngineError:
    return EngineError(400, code, message, param=param)


def unprocessable(code: str, message: str, param: Optional[str] = None) -> EngineError:
    return EngineError(422, code, message, param=param)


def server_error(code: str, message: str) -> EngineError:
    return EngineError(500, code, message)


def not_ready(engine: str, detail: str) -> EngineError:
    return EngineError(503, "engine_not_ready", f"The {engine} engine is not ready: {detail}")
