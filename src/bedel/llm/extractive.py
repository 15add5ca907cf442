"""Extractive answers: the sentences of the retrieved passages that answer the question, quoted.

What the offline engine says about the institution's documents. It never writes a
fact of its own: every line comes from a passage, which the answer cites as [n].
"""

import re
from functools import lru_cache

from bedel.llm.ports import Prompt
from bedel.terms import analyze, english_words, fold, nearest, spell_out, spellings, split_sentences
from bedel.texts.catalog import Texts

ANSWER_SENTENCES = 3
# A later passage must match clearly better to be preferred over an earlier one.
RANK_PENALTY = 0.2
MIN_RANK_FACTOR = 0.1
# A "[2]" footnote in a quoted line must not read as a citation of passage 2.
_BRACKETED_NUMBER = re.compile(r"\[(\d[\d,\s]*)\]")
_NUMBERED = re.compile(r"\s*\d+[.)]\s")
_MONTHS = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
_DAYS = "lunes|martes|miercoles|jueves|viernes|sabado|domingo"
# What kind of line answers a kind of question: "¿cuánto?" wants a figure, "¿cuándo?" a date...
_MONEY = r"\$|\bmxn\b|\busd\b|\bpesos\b|\bdolares\b|\beuros?\b|\d[.,]\d{3}\b|\d[.,]\d{2}\b"
_PRICE = re.compile(_MONEY + r"|%")
_PRICE_SHAPE = re.compile(_MONEY)
# Words sharing this many first letters are forms of one word ("reinscribirse", "reinscripción").
_SAME_PREFIX = 7
_INTENTS = (
    (re.compile(r"\bcuant[oa]s?\b|\bcost|\bprecio|\bporcentaje|\bminim|\bmaxim"), re.compile(r"\d")),
    (re.compile(r"\bcost|\bcuesta|\bprecio|\bcobr|\bpag|\bcuota|\bcolegiatura|\bmensualidad"), _PRICE_SHAPE),
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
_MONEY_TERMS = frozenset(analyze("costo cuota colegiatura arancel"))
# "¿Cuánto cuesta X?" is answered by a line with an amount (or a percentage), or not at all.
_ASKS_PRICE = re.compile(r"\bcuesta|\bcuestan|\bcosto|\bprecio|\bcobra")
# Words that say what is asked, not what about: the rest of the question is its topic.
_ASKING = frozenset(
    analyze("cuanto cuesta costo precio cobran pagar hora horario fecha cuando donde plazo tiempo requisitos piden")
)
# Lines that answer clearly less than the best one are left out: the fee beside the one asked for
# in a table, or the other period's dates, must not read as the answer.
KEEP_RATIO = 0.5
ROW_RATIO = 0.9
# Words of the earlier questions help find the topic, the question's own decide the line.
EARLIER_WEIGHT = 0.5
LIST_ITEMS = 4
# A line that goes on ("...por lo menos al\n80% de las clases") was wrapped, not ended.
_ENDED = re.compile(r"[.:;!?…|]\s*$")
_STARTS_ITEM = re.compile(r"\s*([-*+|#]|\d+[.)]\s)")
_NUMBER_ONLY = re.compile(r"\d+[.)]")


def passage_answer(prompt: Prompt, texts: Texts) -> str | None:
    """Quote up to three lines of the passage that answers best, in their order, citing it.

    None when no line answers: a price asked and no amount in the lines, or a topic the passages
    do not share ("¿cuánto cuesta el estacionamiento?" against a table of fees).
    A number next to the right one is not quoted: lines well below the best one are left out."""
    earlier = spell_out(" ".join(t.content for t in prompt.history if t.role == "user")[-2000:])
    question = spell_out(prompt.question)
    if prompt.search_text and prompt.search_text != prompt.question:
        # Asked in English: the Spanish search words, and the English ones for English documents.
        question = f"{spell_out(prompt.search_text)} {english_words(prompt.question)}"
    analysed = [_analysed(passage.text) for passage in prompt.passages]
    known = spellings(
        set().union(*(terms for lines in analysed for _, terms, _ in lines))
        | set(analyze(" ".join(f"{p.title} {p.heading}" for p in prompt.passages)))
    )
    choices = list(known)
    weights = dict.fromkeys((_spelt(term, known, choices) for term in analyze(earlier)), EARLIER_WEIGHT)
    asked = [_spelt(term, known, choices) for term in analyze(question)]
    weights.update(dict.fromkeys(asked, 2.0))
    wanted = [shape for asks, shape in _INTENTS if asks.search(question)]
    if not wanted and (previous := [t.content for t in prompt.history if t.role == "user"][-1:]):
        # "¿y recursar?" after "¿cuánto cuesta el extraordinario?" still asks how much.
        wanted = [shape for asks, shape in _INTENTS if asks.search(spell_out(previous[0]))]
    if _MONEY_TERMS & set(asked) and _PRICE_SHAPE not in wanted:
        wanted.append(_PRICE_SHAPE)  # "cuanto es la colegiatrua": a fee, though misspelt
    best: tuple[float, int] = (0.0, 0)
    scored: list[list[tuple[float, int]]] = []
    for rank, lines_of_passage in enumerate(analysed):
        scores = [
            (_score(terms, folded, weights, wanted), index) for index, (_, terms, folded) in enumerate(lines_of_passage)
        ]
        scored.append(scores)
        top = max((score for score, _ in scores), default=0.0) * max(MIN_RANK_FACTOR, 1 - RANK_PENALTY * rank)
        if top > best[0]:
            best = (top, rank)
    rank = best[1]
    passage = prompt.passages[rank]
    lines = [line for line, _, _ in analysed[rank]]
    top = max((score for score, _ in scored[rank]), default=0.0)
    # A table row stands alone: the rows beside the best one are other fees, other dates.
    keep = (
        ROW_RATIO if any(lines[i].lstrip().startswith("|") for score, i in scored[rank] if score == top) else KEEP_RATIO
    )
    ranked = sorted((item for item in scored[rank] if item[0] >= top * keep), key=lambda i: (-i[0], i[1]))
    chosen = sorted(index for _, index in ranked[:ANSWER_SENTENCES] if top > 0) or [0]
    # A table row makes sense only with its header, a list item with the line that introduces it.
    first = chosen[0]
    if lines[first].lstrip().startswith("|"):
        header = first
        while header > 0 and lines[header - 1].lstrip().startswith("|"):
            header -= 1
        chosen = sorted({header, *chosen})
    elif lines[chosen[-1]].rstrip().endswith(":"):
        # "Para conservar la beca el alumno debe:" is answered by the items that follow it.
        last = chosen[-1]
        items = [i for i in range(last + 1, min(len(lines), last + 1 + LIST_ITEMS)) if _is_item(lines[i])]
        chosen = sorted({*chosen, *items})
    elif _is_item(lines[first]):
        intro = next((i for i in range(first - 1, -1, -1) if lines[i].rstrip().endswith(":")), None)
        chosen = sorted({intro, *chosen}) if intro is not None else chosen
    if not _answers(question, asked, [lines[index] for index in chosen], set(known.values())):
        return None
    text = "\n".join(line for line in (_plain(lines[index]) for index in chosen) if line)
    return f"{texts.passage_says.format(title=passage.title, number=rank + 1)}\n{text}"


def _answers(question: str, terms: list[str], quoted: list[str], known: set[str]) -> bool:
    """Whether the quoted lines can answer: an amount when a price is asked, and a topic the passages
    share beyond the asking words ("¿cuánto cuesta el estacionamiento?" against a table of fees)."""
    if _ASKS_PRICE.search(question) and not any(_PRICE.search(fold(line)) for line in quoted):
        return False  # no line with an amount matched the question
    asked = set(terms) - _ASKING
    if not asked:
        return True
    return any(_knows(term, known) for term in asked)


def _spelt(term: str, known: dict[str, str], choices: list[str]) -> str:
    """The passages' spelling of a misspelt term ("inscripsion"), as the search corrected it."""
    found = nearest(term, known, choices)
    return found[0] if found else term


def _knows(term: str, known: set[str]) -> bool:
    """The passages hold the term, another form of it ("reinscrib", "reinscripcion") or a slip of it."""
    if term in known:
        return True
    return len(term) >= _SAME_PREFIX and any(other.startswith(term[:_SAME_PREFIX]) for other in known)


def _lines(text: str) -> list[str]:
    """A passage's sentences, list items and table rows, with hard-wrapped lines joined back."""
    joined: list[str] = []
    for line in text.splitlines():
        if joined and line.strip() and not _STARTS_ITEM.match(line) and not _ENDED.search(joined[-1]):
            joined[-1] = f"{joined[-1].rstrip()} {line.strip()}"
        else:
            joined.append(line)
    pieces: list[str] = []
    for piece in split_sentences("\n".join(joined)):
        # "1. Solicita tu ficha": the item's number is not a sentence of its own.
        if pieces and _NUMBER_ONLY.fullmatch(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {piece}"
        else:
            pieces.append(piece)
    return pieces


@lru_cache(maxsize=4096)
def _analysed(text: str) -> tuple[tuple[str, frozenset[str], str], ...]:
    """A passage's lines with their terms and folded text: the same passages answer many questions."""
    return tuple((line, frozenset(analyze(line)), fold(line)) for line in _lines(text))


def _score(terms: frozenset[str], folded: str, weights: dict[str, float], wanted: list[re.Pattern[str]]) -> float:
    matched = sum(weights.get(term, 0.0) for term in terms)
    if not matched:
        return 0.0
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
