"""Extractive answers: the sentences of the retrieved passages that answer the question, quoted.

What the offline engine says about the institution's documents. It never writes a
fact of its own: every line comes from a passage, which the answer cites as [n].
"""

import re

from bedel.llm.ports import Prompt
from bedel.terms import analyze, fold, spell_out, split_sentences
from bedel.texts.catalog import Texts

ANSWER_SENTENCES = 3
# A later passage must match clearly better to be preferred over an earlier one.
RANK_PENALTY = 0.3
MIN_RANK_FACTOR = 0.1
# A "[2]" footnote in a quoted line must not read as a citation of passage 2.
_BRACKETED_NUMBER = re.compile(r"\[(\d[\d,\s]*)\]")
_NUMBERED = re.compile(r"\s*\d+[.)]\s")
_MONTHS = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
_DAYS = "lunes|martes|miercoles|jueves|viernes|sabado|domingo"
# What kind of line answers a kind of question: "¿cuánto?" wants a figure, "¿cuándo?" a date...
_INTENTS = (
    (re.compile(r"\bcuant[oa]s?\b|\bcost|\bprecio|\bporcentaje|\bminim|\bmaxim"), re.compile(r"\d")),
    (re.compile(r"\bcuando\b|\bfecha|\bque dia\b|\bhasta\b"), re.compile(rf"{_MONTHS}|{_DAYS}|\d{{1,2}}/\d{{1,2}}")),
    (re.compile(r"\bplazo|\btarda|\btiempo\b|\bdias\b"), re.compile(r"\d+\s*(dias|semanas|meses|horas)")),
    (re.compile(r"\bhora|\bhorario|\babre|\bcierra"), re.compile(r"\d{1,2}:\d{2}|\bhoras?\b")),
    (re.compile(r"\bcorreo|\bemail|\bmail\b"), re.compile(r"@")),
    (
        re.compile(r"\btelefono|\bnumero\b|\bextension|\bllamar"),
        re.compile(r"\(\d{2,3}\)|\bext\.?\s*\d|\d{3}[ -]\d{4}"),
    ),
    (re.compile(r"\bdonde\b|\bubica"), re.compile(r"\bedificio|\bplanta|\bpiso\b|\bav\.|\bcalle|\bplanta")),
)
_INTENT_BONUS = 1.5


def passage_answer(prompt: Prompt, texts: Texts) -> str:
    """Quote up to three lines of the passage that answers best, in their order, citing it."""
    earlier = spell_out(" ".join(t.content for t in prompt.history if t.role == "user")[-2000:])
    question = spell_out(prompt.search_text or prompt.question)
    weights = dict.fromkeys(analyze(earlier), 1.0)
    weights.update(dict.fromkeys(analyze(question), 2.0))
    wanted = [shape for asks, shape in _INTENTS if asks.search(question)]
    best: tuple[float, int] = (0.0, 0)
    scored: list[list[tuple[float, int]]] = []
    for rank, passage in enumerate(prompt.passages):
        lines = split_sentences(passage.text)
        scores = [(_score(line, weights, wanted), index) for index, line in enumerate(lines)]
        scored.append(scores)
        top = max((score for score, _ in scores), default=0.0) * max(MIN_RANK_FACTOR, 1 - RANK_PENALTY * rank)
        if top > best[0]:
            best = (top, rank)
    rank = best[1]
    passage = prompt.passages[rank]
    lines = split_sentences(passage.text)
    ranked = sorted((item for item in scored[rank] if item[0] > 0), key=lambda item: (-item[0], item[1]))
    chosen = sorted(index for _, index in ranked[:ANSWER_SENTENCES]) or [0]
    # A table row makes sense only with its header, a list item with the line that introduces it.
    first = chosen[0]
    if lines[first].lstrip().startswith("|"):
        header = first
        while header > 0 and lines[header - 1].lstrip().startswith("|"):
            header -= 1
        chosen = sorted({header, *chosen})
    elif _is_item(lines[first]):
        intro = next((i for i in range(first - 1, -1, -1) if lines[i].rstrip().endswith(":")), None)
        chosen = sorted({intro, *chosen}) if intro is not None else chosen
    text = "\n".join(line for line in (_plain(lines[index]) for index in chosen) if line)
    return f"{texts.passage_says.format(title=passage.title, number=rank + 1)}\n{text}"


def _score(line: str, weights: dict[str, float], wanted: list[re.Pattern[str]]) -> float:
    matched = sum(weights.get(term, 0.0) for term in set(analyze(line)))
    if not matched:
        return 0.0
    folded = fold(line)
    return matched + sum(_INTENT_BONUS for shape in wanted if shape.search(folded))


def _is_item(line: str) -> bool:
    return line.lstrip().startswith(("-", "*", "+", "|")) or bool(_NUMBERED.match(line))


def _plain(line: str) -> str:
    """A Markdown line as chat text: no emphasis marks, table cells joined, list items as bullets."""
    text = _BRACKETED_NUMBER.sub(r"(\1)", line.strip().replace("**", "").replace("__", ""))
    if text.startswith("|"):
        cells = [cell.strip() for cell in text.strip("|").split("|")]
        shown = [cell for cell in cells if cell and not set(cell) <= set("-: ")]
        return "- " + ", ".join(shown) if shown else ""
    if text.startswith(("* ", "+ ")):
        return "- " + text[2:]
    return text
