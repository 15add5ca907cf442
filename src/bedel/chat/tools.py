"""Tools the model may call. Each is bound to the caller: no argument names a student."""

import json
from dataclasses import asdict
from typing import Any

from bedel.students.schemas import StudentRecord

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_my_record",
            "description": "Return the school record of the student who is writing.",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "request_human",
            "description": "Hand the conversation to a person on staff when the student asks for one "
            "or the question needs a human decision.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "description": "Why, in a few words."}},
                "required": [],
                "additionalProperties": False,
            },
        },
    },
]


class CallerTools:
    """The `Toolbox` of one conversation; records whether a handoff was requested."""

    definitions = TOOL_DEFINITIONS

    def __init__(self, student: StudentRecord | None) -> None:
        self._student = student
        self.handoff_requested = False

    async def call(self, name: str, arguments: str) -> str:
        match name:
            case "get_my_record":
                if self._student is None:
                    return json.dumps({"known": False, "detail": "No record matches this phone."})
                return json.dumps({"known": True, **asdict(self._student)}, ensure_ascii=False, default=str)
            case "request_human":
                self.handoff_requested = True
                return json.dumps({"handoff": True})
            case _:
                return json.dumps({"error": f"unknown tool {name!r}"})
