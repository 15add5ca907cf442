"""Try it (admins only): ask as any student, or as an unknown number, and see the answer beside
what produced it. The chat service's preview runs the turn's pipeline and writes nothing, so the
student's real conversation never sees the question."""

from typing import Annotated, cast
from urllib.parse import urlencode

from fastapi import Form, Query, Request, Response

from bedel.chat.endpoints import ChatState
from bedel.chat.schemas import MAX_QUESTION_CHARS
from bedel.chat.service import Preview
from bedel.console.auth import AdminOnly, console_router
from bedel.console.catalogue import strings
from bedel.console.rendering import page_language, render
from bedel.dependencies import DBSession, get_state
from bedel.errors import BedelError, InvalidInput
from bedel.students import service as students
from bedel.users.models import StaffUser

router = console_router()

PAGE = "/console/try"
MAX_SEARCH_CHARS = 200


class EmptyQuestion(InvalidInput):
    code = "empty_question"


@router.get("/try")
async def try_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    find: Annotated[str, Query(max_length=MAX_SEARCH_CHARS)] = "",
    phone: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """With `find`, the students to ask as; with `phone`, the form ready to ask as that number."""
    return await _page(request, session, admin, find=find, phone=phone)


@router.post("/try")
async def try_question(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    phone: Annotated[str, Form(max_length=40)] = "",
    question: Annotated[str, Form(max_length=MAX_QUESTION_CHARS)] = "",
) -> Response:
    try:
        canonical = students.canonical_phone(phone)
        if not question.strip() or "\x00" in question:
            raise EmptyQuestion("write a question", field="question")
        # The sign-in check's transaction (it only moved the session's last-seen time) ends here:
        # the model may take seconds, and SQLite's one connection must not wait on it. The
        # preview reads in its own short sessions, as a turn does.
        await session.commit()
        preview = await cast(ChatState, get_state(request)).chat.preview(canonical, question.strip())
    except BedelError as exc:
        return await _page(request, session, admin, phone=phone, question=question, error=exc)
    return await _page(request, session, admin, phone=canonical, question=question, preview=preview)


async def _page(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    *,
    find: str = "",
    phone: str = "",
    question: str = "",
    preview: Preview | None = None,
    error: BedelError | None = None,
) -> Response:
    words = strings(page_language(request))
    found = await students.search_students(session, find) if find.strip() else None
    asking = None
    if phone and error is None:
        # Who the form asks as: a student's name, or an unknown number.
        try:
            asking = await students.get_student(session, phone)
        except BedelError:
            asking = None
    here = f"{PAGE}?{urlencode({'phone': phone})}" if phone else PAGE
    return render(
        request,
        "try.html",
        user=admin,
        status_code=error.status if error else 200,
        here=here,
        find=find,
        found=found,
        phone=phone,
        asking=asking,
        question=question,
        preview=preview,
        error=words.get(f"try_error_{error.code}", error.message) if error else None,
        max_question=MAX_QUESTION_CHARS,
    )
