"""What a vendor's delivery error code means, in Spanish, for the staff who read the thread."""

# Meta Graph API codes (six digits) and Twilio codes (five) do not overlap.
EXPLANATIONS = {
    "131047": "Pasaron más de 24 horas desde el último mensaje del estudiante: WhatsApp solo acepta una plantilla.",
    "131026": "WhatsApp no pudo entregar el mensaje: el número no usa WhatsApp o su aplicación no puede recibirlo.",
    "130429": "Se alcanzó el límite de envíos por segundo del número de la institución.",
    "131056": "Se enviaron demasiados mensajes seguidos a este estudiante.",
    "63016": "Twilio: pasaron más de 24 horas desde el último mensaje del estudiante; hace falta una plantilla.",
    "21610": "El estudiante pidió no recibir mensajes de este número (respondió STOP).",
    # Bedel's own: the window closed and no fallback is configured, so nothing was sent.
    "window_closed": (
        "Pasaron más de 24 horas desde el último mensaje del estudiante y no hay plantilla, SMS ni correo "
        "configurado para escribirle."
    ),
    "no_email": (
        "Pasaron más de 24 horas desde el último mensaje del estudiante y su registro no tiene correo para escribirle."
    ),
}
# Limits on sending, not on the message: the send is retried after this many seconds instead of failing.
# 130429: the business number's throughput is spent; 131056: too many messages to one student.
THROTTLE_DELAY_S = {"130429": 10.0, "131056": 30.0}


def explain(code: str | None, detail: str) -> str:
    """The Spanish explanation of `code`, or the vendor's own words when Bedel has none."""
    if code in EXPLANATIONS:
        return EXPLANATIONS[code]
    return f"El proveedor no entregó el mensaje: {detail}"
