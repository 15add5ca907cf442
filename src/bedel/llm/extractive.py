"""Extractive answers: the sentences of the retrieved passages that answer the question, quoted.

What the offline engine says about the institution's documents. It never writes a
fact of its own: every line comes from a passage, which the answer cites as [n].
"""

import math
import re
from collections.abc import Sequence, Set
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
# What answers "¿cuánto cuesta?": an amount, a percentage, or that it costs nothing.
_PRICE = re.compile(_MONEY + r"|%|\bsin costo\b|\bgratuit|\bgratis\b|\bfree\b")
_PRICE_SHAPE = re.compile(_MONEY)
_DATE_SHAPE = re.compile(rf"{_MONTHS}|{_DAYS}|\d{{1,2}}/\d{{1,2}}|\bdia \d{{1,2}}\b")
_HOURS_SHAPE = re.compile(r"\d{1,2}:\d{2}|\bhoras?\b")
# A way to be attended other than in person: the hours "por WhatsApp" are not the office's opening hours.
_CHANNEL = re.compile(r"\bwhatsapp\b|\bpor (?:mensaje|telefono|correo|chat)\b|\ben linea\b")
CHANNEL_FACTOR = 0.5
# A figure, in digits or words ("como máximo tres exámenes").
_FIGURE = re.compile(r"\d|\b(?:dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez)\b")
_ASKS_AMOUNT = re.compile(r"\bcuant|\bcost|\bcuesta|\bprecio|\bcobr")
# Words sharing this many first letters are forms of one word ("reinscribirse", "reinscripción").
_SAME_PREFIX = 7
_INTENTS = (
    (re.compile(r"\bcuant[oa]s?\b|\bcost|\bprecio|\bporcentaje|\bminim|\bmaxim"), _FIGURE),
    (re.compile(r"\bcost|\bcuesta|\bprecio|\bcobr|\bpag|\bcuota|\bcolegiatura|\bmensualidad"), _PRICE_SHAPE),
    (re.compile(r"\bcuando\b|\bfecha|\bque dia\b|\bhasta\b"), _DATE_SHAPE),
    (re.compile(r"\bplazo|\btarda|\btiempo\b|\bdias\b"), re.compile(r"\d+\s*(dias|semanas|meses|horas)")),
    (re.compile(r"\bhora|\bhorario|\babre|\bcierra"), _HOURS_SHAPE),
    (re.compile(r"\bcorreo|\bemail|\bmail\b"), re.compile(r"@")),
    (
        re.compile(r"\btelefono|\bnumero\b|\bextension|\bllamar"),
        re.compile(r"\(\d{2,3}\)|\bext\.?\s*\d|\d{3}[ -]\d{4}"),
    ),
    (
        re.compile(r"\bdonde\b|\bubica"),
        re.compile(r"\bedificio|\bplanta|\bpiso\b|\bav\.|\bavenida\b|\bcalle\b|\bblvd\b|\bboulevard\b|\bcalzada\b"),
    ),
    # "¿Qué documentos piden?" is answered by a line that lists them: "entrega: acta, certificado, CURP...".
    (re.compile(r"\brequisit|\bdocumento|\bpapeles\b"), re.compile(r":\s*[^,:]+(?:,[^,]+){2,}")),
)
_INTENT_BONUS = 1.5
_MONEY_TERMS = frozenset(analyze("costo cuota colegiatura arancel"))
# "¿Cuánto cuesta X?" is answered by a line with an amount (or a percentage), or not at all.
_ASKS_PRICE = re.compile(r"\bcuesta|\bcuestan|\bcosto|\bprecio|\bcobra")
# Words that say what is asked, not what about: the rest of the question is its topic.
_ASKING = frozenset(
    analyze(
        "cuanto cuesta costo precio cobran sale salen pagar hora horario fecha cuando donde plazo tiempo "
        "piden pedir pasame dame mandame hacer hacen hago cobraron cobro dinero porcentaje antes despues"
    )
)
# Who asks and from where, and who is asked, not what about ("soy mamá de un alumno", "escribo de
# otro cel", "el teléfono de la escuela").
_ASKER = frozenset(
    analyze(
        "mama papa hijo hija tutor alumno alumna estudiante student cel celular numero escribo "
        "escuela universidad instituto institucion colegio school university college"
    )
)
# Words before a noun, in Spanish and English.
_DETERMINERS = frozenset(
    {
        "el", "la", "los", "las", "lo", "del", "de", "al", "un", "una", "unos", "unas", "mi", "mis", "tu", "tus",
        "su", "sus", "este", "esta", "ese", "esa", "que", "cual", "cuales", "cuanto", "cuanta", "cuantos",
        "cuantas", "the", "a", "an", "my", "your", "of",
    }
)  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")
# How a passage's heading path joins its sections ("Centro de Cómputo y Biblioteca > Centro de Cómputo").
_HEADING_PATH = " > "
# "¿qué pasa si...?" (spelt out as "que sucede") asks a consequence; it is no topic.
_WHAT_HAPPENS = re.compile(r"\bque (?:me )?sucede\b")
# Lines that answer clearly less than the best one are left out: the fee beside the one asked for
# in a table, or the other period's dates, must not read as the answer.
KEEP_RATIO = 0.5
ROW_RATIO = 0.9
# Words of the earlier questions help find the topic, the question's own decide the line.
EARLIER_WEIGHT = 0.5
ASKING_WEIGHT = 1.0
LIST_ITEMS = 4
# A line that goes on ("...por lo menos al\n80% de las clases") was wrapped, not ended.
_ENDED = re.compile(r"[.:;!?…|]\s*$")
_STARTS_ITEM = re.compile(r"\s*([-*+|#]|\d+[.)]\s)")
_NUMBER_ONLY = re.compile(r"\d+[.)]")
# A line (or its last sentence) that is only a label: "Horario:", "...renovable una vez. Multa por retraso:".
_ENDS_IN_LABEL = re.compile(r"(?:^|[.;!?…]\s+)[^:.;!?…|]{1,40}:\s*$")
# Where a line starts saying a second thing: after ";", or at "y" before another date, day or amount.
_CLAUSE = re.compile(
    r"(?<=;)\s+|,?\s+y\s+(?=(?:del?|al|a partir|los|las|s[aá]bados?|domingos?|mxn|usd|\$|\d)\b)", re.IGNORECASE
)
# "Impresiones:", "BIBLIOTECA Horario:": what a line is about, kept before the part quoted.
_LABEL = re.compile(r"[^:.;]{1,40}:\s")
# Forms of one word share this many first letters ("reinscrib", "reinscripcion"), or one is the
# other's start ("asist", "asistent").
_SHORTEST_FORM = 5
_SHORTEST_STEM = 4
FORM_WEIGHT = 0.8
SECTION_WEIGHT = 0.5


def passage_answer(prompt: Prompt, texts: Texts) -> str | None:
    """Quote up to three lines of the passage that answers best, in their order, citing it.

    None when no line answers: a price asked and no amount in the lines, or a question whose topic
    the quoted lines do not cover ("¿cuánto cuesta el estacionamiento?" against a table of fees).
    A number next to the right one is not quoted: lines well below the best one are left out, and
    of a line that says two things ("del 18 al 29 de enero ...; y del 19 al 30 de julio ...") only
    the part the question asks about is quoted."""
    earlier = spell_out(" ".join(t.content for t in prompt.history if t.role == "user")[-2000:])
    question = spell_out(prompt.question)
    topics = [question]
    if prompt.search_text and prompt.search_text != prompt.question:
        # Asked in English: the Spanish search words, and the English ones for English documents.
        topics = [spell_out(prompt.search_text), english_words(prompt.question)]
        question = " ".join(topics)
    analysed = [_analysed(passage.text) for passage in prompt.passages]
    heads = [frozenset(analyze(f"{p.title} {p.heading}")) for p in prompt.passages]
    # A section's own heading ("Centro de Cómputo") says what each of its lines is about.
    sections = [frozenset(analyze(p.heading.rpartition(_HEADING_PATH)[2])) for p in prompt.passages]
    known = spellings(set().union(*(terms for lines in analysed for _, terms, _ in lines), *heads))
    choices = list(known)
    weights = dict.fromkeys((_spelt(term, known, choices) for term in analyze(earlier)), EARLIER_WEIGHT)
    asked = [_spelt(term, known, choices) for term in analyze(question)]
    # How it asks ("hora", "costo") is the intent's to match; what it asks about decides the line.
    weights.update({term: ASKING_WEIGHT if term in _ASKING else 2.0 for term in asked})
    needed = frozenset(term for term in asked if term not in _ASKING and not term.isdigit())
    weights = _with_forms(weights, set(known.values()))
    wanted = [shape for asks, shape in _INTENTS if asks.search(question)]
    if not wanted and (previous := [t.content for t in prompt.history if t.role == "user"][-1:]):
        # "¿y recursar?" after "¿cuánto cuesta el extraordinario?" still asks how much.
        wanted = [shape for asks, shape in _INTENTS if asks.search(spell_out(previous[0]))]
    if _MONEY_TERMS & set(asked) and _PRICE_SHAPE not in wanted:
        wanted.append(_PRICE_SHAPE)  # "cuanto es la colegiatrua": a fee, though misspelt
    amount = bool(_ASKS_AMOUNT.search(question))
    if not amount and (_DATE_SHAPE in wanted or _WHAT_HAPPENS.search(question)):
        # "¿hasta qué día se paga?", "¿qué pasa si no pago?" ask a date or a consequence: the fee
        # beside it is the neighbour, not the answer.
        wanted = [shape for shape in wanted if shape is not _PRICE_SHAPE]
    # The question's own topic words, each side of an English question on its own.
    sides = [[_spelt(term, known, choices) for term in _topic(topic)] for topic in topics]
    price = bool(_ASKS_PRICE.search(question))
    # "¿Cuál es el horario de atención?" names no channel: a line with the hours of one is a neighbour.
    channels = _HOURS_SHAPE in wanted and not _CHANNEL.search(question)
    scored = [
        [
            (
                _score(terms, folded, weights, wanted)
                * (CHANNEL_FACTOR if channels and _CHANNEL.search(folded) else 1),
                index,
            )
            for index, (_, terms, folded) in enumerate(lines)
        ]
        for lines in analysed
    ]
    # The section's heading words count, a little, for each line that answers something itself.
    credited = [
        [
            (_credited(score, terms, section, weights), index)
            for (_, terms, _), (score, index) in zip(lines, own, strict=True)
        ]
        for lines, own, section in zip(analysed, scored, sections, strict=True)
    ]
    # Passages in the order their best line answers (a later passage must be clearly better); on a
    # tie, the one naming more of what is asked about.
    about = _with_forms(dict.fromkeys((term for side in sides for term in side), 1.0), set(known.values()))
    order = sorted(
        range(len(analysed)),
        key=lambda rank: max(
            (
                (score * max(MIN_RANK_FACTOR, 1 - RANK_PENALTY * rank), sum(about.get(term, 0.0) for term in terms))
                for (_, terms, _), (score, _) in zip(analysed[rank], credited[rank], strict=True)
                if score > 0
            ),
            default=(0.0, 0.0),
        ),
        reverse=True,
    )
    best = [max(lines, default=(0.0, 0)) for lines in credited]
    if _DATE_SHAPE in wanted:
        # "¿cuándo son los extras?": a passage whose best line has a date before one that only names them.
        order.sort(
            key=lambda rank: not _DATE_SHAPE.search(analysed[rank][best[rank][1]][2]) if analysed[rank] else True
        )
    # "¿cuánto es la colegiatura?" asks an amount of money, nothing else: "en tres días hábiles" is a
    # figure, not the fee.
    money = amount and _PRICE_SHAPE in wanted and all(shape in (_FIGURE, _PRICE_SHAPE) for shape in wanted)
    for rank in order:
        score, first = best[rank]
        folded = analysed[rank][first][2]
        if amount and score > 0 and not _PRICE.search(folded) and (money or not _FIGURE.search(folded)):
            continue  # "¿cuánto es la inscripción?" is not answered by a line with no figure (or no amount)
        quoted = _quoted(analysed[rank], sections[rank], credited[rank], scored[rank], needed, weights, wanted)
        if quoted is None:
            break
        if not _answers([_plain(line) for line in quoted], sides, heads[rank], price):
            continue
        text = "\n".join(line for line in (_plain(line) for line in quoted) if line)
        return f"{texts.passage_says.format(title=prompt.passages[rank].title, number=rank + 1)}\n{text}"
    return None


def _quoted(
    analysed: Sequence[tuple[str, frozenset[str], str]],
    section: frozenset[str],
    credited: list[tuple[float, int]],
    scores: list[tuple[float, int]],
    needed: frozenset[str],
    weights: dict[str, float],
    wanted: list[re.Pattern[str]],
) -> list[str] | None:
    """The lines of one passage that answer, with what they need to be read (a table's header, a
    list's introduction); None when no line matches the question at all. The best line is the one
    that answers best in its section; the others are measured by what they answer themselves, since
    the heading is the same for all of them. When the best line answers whole (every word the
    question is about, and the kind of figure it asks for), only lines that do too are quoted with
    it: the others are the neighbours with the other figures ("con menos del 80 % y al menos 60 %
    de asistencia tiene derecho a examen extraordinario" beside the ordinary exam's 80 %)."""
    lines = [line for line, _, _ in analysed]
    top = max((score for score, _ in credited), default=0.0)
    if top <= 0:
        return None
    # A table row or a list item stands alone: the rows beside the best one are other fees, other dates.
    best = [i for score, i in credited if score == top]
    keep = ROW_RATIO if any(_is_item(lines[i]) for i in best) else KEEP_RATIO
    least = max(scores[i][0] for i in best) * keep
    ranked = sorted((item for item in scores if item[0] >= least or item[1] in best), key=lambda i: (-i[0], i[1]))
    chosen = sorted(index for _, index in ranked[:ANSWER_SENTENCES])
    if any(_whole(analysed[i], section, needed, wanted) for i in best):
        chosen = [i for i in chosen if _whole(analysed[i], section, needed, wanted)]
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
    return [_part(lines[i], weights, wanted) if i in best else lines[i] for i in chosen]


def _part(line: str, weights: dict[str, float], wanted: list[re.Pattern[str]]) -> str:
    """Of a line that says two things ("... 1,00 en blanco y negro y 5,00 a color"), the part the
    question asks about, after the line's label; the whole line when no part answers better."""
    parts = _CLAUSE.split(line)
    if len(parts) < 2:
        return line
    label = _LABEL.match(parts[0])
    # The label ("BIBLIOTECA Horario:") is what every part is about: it tells none of them apart.
    compared = [parts[0][label.end() :] if label else parts[0], *parts[1:]]
    scores = [_score(frozenset(analyze(part)), fold(part), weights, wanted) for part in compared]
    top = max(scores)
    best = scores.index(top)
    # A later part the question does not name goes on saying the same thing ("...del 1 al 5 y del 15 al 20").
    if top == 0 or scores.count(top) > 1 or 0 in scores[best + 1 :]:
        return line
    part = parts[best].strip().rstrip(";,")
    if best == 0:
        return part if _ENDED.search(part) else f"{part}."
    lead = label.group(0).strip() + " … " if label else "… "
    return lead + part


def _answers(quoted: list[str], sides: list[list[str]], head: frozenset[str], price: bool) -> bool:
    """Whether the quoted lines can answer: the question's topic words covered by them (or by their
    passage's title), on either side of an English question; and when an amount is asked, one line
    with an amount that covers most of the topic itself ("¿cuánto cuesta la reposición del título?"
    is not answered by the rows of the title's fee and the credential's reposition: a price beside
    the one asked for is the likeliest wrong answer)."""
    lines = [(line, head.union(analyze(line))) for line in quoted]
    if price:
        priced = [covered for line, covered in lines if _PRICE.search(fold(line))]
        return any(_covers(side, covered, _enough(len(side))) for covered in priced for side in sides) or (
            bool(priced) and not any(sides)
        )
    if not any(sides):
        return True
    covered = head.union(*(terms for _, terms in lines))
    # A side left with no topic (every word asked how or of whom) is answered by any matching line.
    return any(not side or _covers(side, covered, 1) for side in sides)


def _covers(side: list[str], covered: frozenset[str], least: int) -> bool:
    return bool(side) and sum(_knows(term, covered) for term in side) >= least


def _topic(question: str) -> list[str]:
    """The words a question is about: the nouns (a word after an article, a possessive, "de" or
    "cuántos": "la reposición del título") when it has some, else every word but the asking ones;
    never figures, whom it is for or how it asks ("¿cuántas horas dura el diplomado?": diplomado)."""
    words = _WORD.findall(_WHAT_HAPPENS.sub(" ", question))
    nouns: list[str] = []
    others: list[str] = []
    for before, word in zip(["", *words], words, strict=False):
        for term in analyze(word):
            if term not in _ASKING and term not in _ASKER and not term.isdigit():
                (nouns if before in _DETERMINERS else others).append(term)
    return list(dict.fromkeys(nouns or others))


def _enough(terms: int) -> int:
    """How many of a question's topic words the answer must cover: both of two, half of more."""
    return min(terms, max(2, math.ceil(terms / 2)))


def _with_forms(weights: dict[str, float], known: set[str]) -> dict[str, float]:
    """The weights with the passages' other forms of each weighted term, a little lower."""
    forms = dict(weights)
    for term, weight in weights.items():
        if len(term) < _SHORTEST_FORM:
            continue
        for other in known:
            if other not in weights and _same_word(term, other):
                forms[other] = max(forms.get(other, 0.0), weight * FORM_WEIGHT)
    return forms


def _same_word(one: str, other: str) -> bool:
    shorter = min(len(one), len(other))
    if shorter < _SHORTEST_STEM or one[:_SHORTEST_STEM] != other[:_SHORTEST_STEM]:
        return False
    if one.startswith(other) or other.startswith(one):
        return shorter >= _SHORTEST_STEM
    return shorter >= _SAME_PREFIX and one[:_SAME_PREFIX] == other[:_SAME_PREFIX]


def _spelt(term: str, known: dict[str, str], choices: list[str]) -> str:
    """The passages' spelling of a misspelt term ("inscripsion"), as the search corrected it."""
    found = nearest(term, known, choices)
    return found[0] if found else term


def _knows(term: str, known: Set[str]) -> bool:
    """The passages hold the term, another form of it ("reinscrib", "reinscripcion") or a slip of it."""
    return term in known or any(_same_word(term, other) for other in known)


def _lines(text: str) -> list[str]:
    """A passage's sentences, list items and table rows, with hard-wrapped lines joined back, a
    label joined to what it labels ("Multa por retraso:" and "MXN 8,00 por libro") and a list item
    kept whole ("1. Solicita tu ficha... Costo de la ficha: MXN 650,00.")."""
    joined: list[str] = []
    for line in text.splitlines():
        previous = joined[-1] if joined else ""
        goes_on = not _ENDED.search(previous) or bool(_ENDS_IN_LABEL.search(previous))
        if previous.strip() and line.strip() and not _STARTS_ITEM.match(line) and goes_on:
            joined[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            joined.append(line)
    pieces: list[str] = []
    for line in joined:
        for piece in [line.strip()] if _STARTS_ITEM.match(line) else split_sentences(line):
            # "1. Solicita tu ficha": the item's number is not a sentence of its own.
            if pieces and _NUMBER_ONLY.fullmatch(pieces[-1]):
                pieces[-1] = f"{pieces[-1]} {piece}"
            elif piece:
                pieces.append(piece)
    return pieces


@lru_cache(maxsize=4096)
def _analysed(text: str) -> tuple[tuple[str, frozenset[str], str], ...]:
    """A passage's lines with their terms and folded text: the same passages answer many questions."""
    # A list item's number is no figure: "2. Haber pagado la cuota" does not say how much.
    return tuple((line, frozenset(analyze(line)), fold(_unnumbered(line))) for line in _lines(text))


def _unnumbered(line: str) -> str:
    number = _NUMBERED.match(line)
    return line[number.end() :] if number else line


def _score(terms: frozenset[str], folded: str, weights: dict[str, float], wanted: list[re.Pattern[str]]) -> float:
    matched = sum(weights.get(term, 0.0) for term in terms)
    if not matched:
        return 0.0
    return matched + sum(_INTENT_BONUS for shape in wanted if shape.search(folded))


def _whole(
    line: tuple[str, frozenset[str], str],
    section: frozenset[str],
    needed: frozenset[str],
    wanted: list[re.Pattern[str]],
) -> bool:
    """Whether a line answers the whole question: all it is about, and the figure it asks for."""
    _, terms, folded = line
    covered = terms | section
    # A percentage is what a surcharge or a discount costs: it answers "¿cuánto es?" as an amount does.
    shapes = [_PRICE if shape is _PRICE_SHAPE else shape for shape in wanted]
    return (
        bool(needed and wanted)
        and all(_knows(term, covered) for term in needed)
        and all(shape.search(folded) for shape in shapes)
    )


def _credited(score: float, terms: frozenset[str], section: frozenset[str], weights: dict[str, float]) -> float:
    """A line's score with its section's heading words it does not say itself, at a lower weight."""
    if not score:
        return 0.0
    return score + SECTION_WEIGHT * sum(weights.get(term, 0.0) for term in section - terms)


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
