"""A fake Graph API for the webhook benchmark: answers the send-message call at once, as Meta documents it.

Run: `uvicorn fake_graph:app --app-dir bench`. `GET /stats` counts the messages sent, in all and per recipient.
"""

import collections
import itertools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_ids = itertools.count(1)
_sent = {"messages": 0}
_to: collections.Counter[str] = collections.Counter()


async def send_message(request: Request) -> JSONResponse:
    payload = await request.json()
    _sent["messages"] += 1
    _to[payload["to"]] += 1
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": payload["to"], "wa_id": payload["to"]}],
            "messages": [{"id": f"wamid.bench{next(_ids)}"}],
        }
    )


async def stats(_: Request) -> JSONResponse:
    return JSONResponse({**_sent, "to": _to})


app = Starlette(
    routes=[Route("/v23.0/{phone_number_id}/messages", send_message, methods=["POST"]), Route("/stats", stats)]
)
