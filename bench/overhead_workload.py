"""What the benchmark's clients ask, and at which loads: shared by the load generator, the roster and the report."""

HOST = "127.0.0.1"

LEVELS = (1, 16, 64)
SLOW_DELAY_S = 1.5
SLOW_QUESTIONS = 2

# A client asks these in order, one conversation (phone) after another; the client's phones
# are its own, so no two clients ever wait on the same conversation.
QUESTIONS = (
    "Hola, necesito ayuda.",
    "¿Cuánto debo de colegiatura y cuándo vence el pago?",
    "¿Cuál es mi promedio?",
    "¿Quién es mi tutor?",
    "Gracias. ¿Cuánto es el recargo si pago tarde?",
)
# The even conversations below this number, per client, belong to students on the roster:
# half the askers are known students whose record goes into the prompt.
KNOWN_CONVERSATIONS = 200
SLOW_RUN, BURST_RUN = 8, 9


def phone_for(run: int, client: int, conversation: int) -> str:
    """A valid Mexico City number (10 national digits) unique to (run, client, conversation)."""
    return f"+5255{run}{client:03d}{conversation:04d}"
