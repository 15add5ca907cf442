"""A campaign's message, rendered for each recipient from their own record (Jinja2, sandboxed)."""

from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from bedel.campaigns.audience import Fields
from bedel.campaigns.models import CampaignChannel
from bedel.errors import InvalidInput

_environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class RenderFailed(Exception):
    """The recipient's record lacks a field the message uses."""


@dataclass(frozen=True)
class Rendered:
    # What the student's thread records as sent.
    text: str
    # What an SMS or an email says.
    body: str = ""
    subject: str | None = None
    template: str | None = None
    language: str | None = None
    parameters: list[str] = field(default_factory=list)


class CampaignMessage:
    def __init__(self, channel: CampaignChannel, message: dict[str, Any]) -> None:
        self.channel = channel
        self._template = message.get("template")
        sources: dict[str, str] = {}
        if self._template is not None:
            for number, parameter in enumerate(self._template.get("parameters", [])):
                sources[f"message.template.parameters.{number}"] = parameter
        for name in ("subject", "text"):
            if message.get(name) is not None:
                sources[f"message.{name}"] = message[name]
        self.variables: set[str] = set()
        self._compiled = {}
        for where, source in sources.items():
            try:
                self.variables |= meta.find_undeclared_variables(_environment.parse(source))
                self._compiled[where] = _environment.from_string(source)
            except TemplateError as exc:
                raise InvalidInput(f"the template does not compile: {exc}", field=where) from None

    def render(self, fields: Fields) -> Rendered:
        # A field the record leaves empty is missing, not the word "None".
        present = {name: value for name, value in fields.items() if value is not None}
        try:
            values = {where: template.render(present).strip() for where, template in self._compiled.items()}
        except TemplateError as exc:
            raise RenderFailed(f"the message could not be written for this recipient: {exc}") from None
        if self._template is not None:
            parameters = [values[f"message.template.parameters.{n}"] for n in range(len(self._template["parameters"]))]
            name, language = self._template["name"], self._template["language"]
            shown = f"[Plantilla {name}] " + " | ".join(parameters)
            return Rendered(shown.strip(), template=name, language=language, parameters=parameters)
        subject, text = values.get("message.subject"), values["message.text"]
        return Rendered(f"{subject}\n\n{text}" if subject else text, body=text, subject=subject)
