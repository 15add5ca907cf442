"""The privacy notice a WhatsApp contact gets once, with their first answer (BEDEL_PRIVACY_NOTICE)."""

from bedel.config import Settings
from bedel.texts.catalog import texts_for

OFF = "off"


def privacy_notice(settings: Settings) -> str | None:
    """The notice to send: the setting's own text, the standard one naming the institution, or None when off."""
    if settings.privacy_notice is None:
        standard = texts_for(settings.language).privacy_notice
        return standard.format(institution=settings.institution_name, contact=settings.contact)
    if settings.privacy_notice.strip().lower() == OFF:
        return None
    return settings.privacy_notice
