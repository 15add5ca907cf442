"""The route map: every router, in one place."""

from fastapi import APIRouter

from bedel.chat.endpoints import router as chat_router
from bedel.chat.endpoints import threads_router
from bedel.knowledge.endpoints import router as knowledge_router
from bedel.ops.endpoints import router as ops_router
from bedel.students.endpoints import router as students_router

router = APIRouter()
router.include_router(chat_router)
router.include_router(threads_router)
router.include_router(students_router)
router.include_router(knowledge_router)
router.include_router(ops_router)
