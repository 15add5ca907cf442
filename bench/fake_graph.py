"""A fake Graph API for the webhook benchmark: answers the send-message call at once, as Meta documents it.

Run: `uvicorn fake_graph:app --app-dir bench`. `GET /stats` counts the messages sent, in all and per recipient;
`GET /log?since=N` lists them from the N-th on, each as [unix time received, recipient, type, start of its text].
"""

import collections
import itertools
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_ids = itertools.count(1)
_sent = {"messages": 0}
_to: collections.Counter[str] = collections.Counter()
_log: list[tuple[float, str, str, str]] = []


async def send_message(request: Request) -> JSONResponse:
    payload = await request.json()
    _sent["messages"] += 1
    _to[payload["to"]] += 1
    text = payload.get("text", {}).get("body") or payload.get("interactive", {}).get("body", {}).get("text", "")
    _log.append((time.time(), payload["to"], payload.get("type", "text"), text[:40]))
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": payload["to"], "wa_id": payload["to"]}],
            "messages": [{"id": f"wamid.bench{next(_ids)}"}],
        }
    )


async def stats(_: Request) -> JSONResponse:
    return JSONResponse({**_sent, "to": _to})


async def sent_log(request: Request) -> JSONResponse:
    return JSONResponse(_log[int(request.query_params.get("since", 0)) :])


app = Starlette(
    routes=[
        Route("/v23.0/{phone_number_id}/messages", send_message, methods=["POST"]),
        Route("/stats", stats),
        Route("/log", sent_log),
    ]
)
