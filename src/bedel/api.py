"""The route map: every router, and the paths that take uploads, in one place."""

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from bedel.audit.endpoints import router as audit_router
from bedel.campaigns.endpoints import router as campaigns_router
from bedel.campaigns.schemas import MAX_CAMPAIGN_BYTES
from bedel.channels.endpoints import router as staff_messages_router
from bedel.channels.twilio.endpoints import router as twilio_router
from bedel.channels.whatsapp.endpoints import router as whatsapp_router
from bedel.chat.endpoints import router as chat_router
from bedel.chat.endpoints import threads_router
from bedel.console.audit import router as console_audit_router
from bedel.console.campaigns import router as console_campaigns_router
from bedel.console.conversations import router as console_conversations_router
from bedel.console.dashboard import router as console_dashboard_router
from bedel.console.documents import UPLOAD_PATHS as CONSOLE_UPLOAD_PATHS
from bedel.console.documents import router as console_documents_router
from bedel.console.endpoints import router as console_router
from bedel.console.inbox import router as console_inbox_router
from bedel.console.rendering import STATIC_DIR
from bedel.console.students import router as console_students_router
from bedel.console.try_it import router as console_try_router
from bedel.console.users import router as console_users_router
from bedel.feedback.endpoints import router as feedback_router
from bedel.knowledge.endpoints import MAX_UPLOAD_BYTES
from bedel.knowledge.endpoints import router as knowledge_router
from bedel.ops.endpoints import router as ops_router
from bedel.privacy.endpoints import router as privacy_router
from bedel.students.endpoints import MAX_IMPORT_BYTES
from bedel.students.endpoints import router as students_router

router = APIRouter()
router.include_router(chat_router)
router.include_router(threads_router)
router.include_router(staff_messages_router)
router.include_router(feedback_router)
router.include_router(whatsapp_router)
router.include_router(twilio_router)
router.include_router(students_router)
router.include_router(privacy_router)
router.include_router(knowledge_router)
router.include_router(campaigns_router)
router.include_router(audit_router)
router.include_router(ops_router)
router.include_router(console_router)
router.include_router(console_users_router)
router.include_router(console_inbox_router)
router.include_router(console_conversations_router)
router.include_router(console_campaigns_router)
router.include_router(console_dashboard_router)
router.include_router(console_students_router)
router.include_router(console_documents_router)
router.include_router(console_try_router)
router.include_router(console_audit_router)
router.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console_static")

# The request-size middleware's exceptions to its 64 KiB: uploads carry files.
UPLOAD_BODY_BYTES = {
    "/students/import": MAX_IMPORT_BYTES,
    "/console/students/import": MAX_IMPORT_BYTES,
    "/knowledge/documents": MAX_UPLOAD_BYTES,
    # A campaign may list its recipients: 200,000 phones or emails.
    "/campaigns": MAX_CAMPAIGN_BYTES,
    "/console/campaigns": MAX_CAMPAIGN_BYTES,
    "/console/campaigns/preview": MAX_CAMPAIGN_BYTES,
    # The console's document uploads take what the API's do.
    **dict.fromkeys(CONSOLE_UPLOAD_PATHS, MAX_UPLOAD_BYTES),
}
