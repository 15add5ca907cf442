from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from bedel.auth import Public
from bedel.dependencies import get_state
from bedel.migrate import current_revision, head_revision, is_pending

router = APIRouter(tags=["ops"], dependencies=[Public])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive. Never checks dependencies, so an outage is not a restart loop."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready for traffic: the database answers and its schema is current."""
    state = get_state(request)
    if state.shutting_down:
        return _not_ready("shutting down")
    try:
        revision = await current_revision(state.engine)
    except (SQLAlchemyError, OSError) as exc:
        return _not_ready(f"database unreachable: {type(exc).__name__}")
    if is_pending(revision):
        return _not_ready(f"database schema at {revision}, code expects {head_revision()}: run `bedel db upgrade`")
    return JSONResponse({"status": "ready", "schema": revision})


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503, headers={"Retry-After": "5"})
