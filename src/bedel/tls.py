"""One TLS context for every outbound HTTP client of the process.

Building one loads the CA bundle, tens of milliseconds of CPU; each app builds several clients
(WhatsApp, Twilio, the LLM, embeddings, transcription), so they share one instead.
"""

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
