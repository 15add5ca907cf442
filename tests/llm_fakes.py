"""OpenAI Chat Completions bodies shaped exactly like the vendor's documented responses."""

import json
import time
from typing import Any

import httpx

LLM_BASE_URL = "http://llm.test/v1"


def completion_body(
    content: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 50,
    completion_tokens: int = 10,
    model: str = "gpt-4o-mini-2024-07-18",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_44709d6fcb",
    }


def tool_call(name: str, arguments: str = "{}", call_id: str = "call_abc123") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(content: str | None, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json=completion_body(content, **kwargs))


def stream_response(pieces: list[str], *, model: str = "gpt-4o-mini-2024-07-18") -> httpx.Response:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None, choices: bool = True) -> str:
        body = {
            "id": "chatcmpl-123",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
            "usage": usage,
        }
        return f"data: {json.dumps(body)}\n\n"

    lines = [chunk({"role": "assistant", "content": ""}, None)]
    lines += [chunk({"content": piece}, None) for piece in pieces]
    lines.append(chunk({}, "stop"))
    lines.append(
        chunk(
            {},
            None,
            usage={
                "prompt_tokens": 40,
                "completion_tokens": len(pieces),
                "total_tokens": 40 + len(pieces),
            },
            choices=False,
        )
    )
    lines.append("data: [DONE]\n\n")
    return httpx.Response(200, content="".join(lines).encode(), headers={"content-type": "text/event-stream"})


def sent_messages(request: httpx.Request) -> list[dict[str, Any]]:
    return json.loads(request.content)["messages"]  # type: ignore[no-any-return]


def embeddings_response(vectors: list[list[float]], *, model: str = "text-embedding-3-small") -> httpx.Response:
    """An OpenAI `/embeddings` response: one vector per input, tagged with its input's index."""
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
            "model": model,
            "usage": {"prompt_tokens": 8 * len(vectors), "total_tokens": 8 * len(vectors)},
        },
    )


def sent_inputs(request: httpx.Request) -> list[str]:
    """The texts an `/embeddings` request asked for (the SDK may send one string or a list)."""
    body = json.loads(request.content)["input"]
    return [body] if isinstance(body, str) else body
