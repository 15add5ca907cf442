"""Markdown cut into passages that stand on their own."""

import itertools

from bedel.knowledge.chunking import CHUNK_TOKENS, chunk_markdown
from bedel.llm.tokens import estimate_tokens
from bedel.terms import split_sentences

GUIDE = """# Reglamento

Texto general del reglamento.

## Pagos

### Recargos

El recargo por pago tardío es de 10 % sobre la mensualidad.

## Becas

Las becas se renuevan cada semestre.
"""


def long_section(sentences: int) -> str:
    body = " ".join(
        f"La regla número {n} del reglamento establece un requisito distinto para cada trámite escolar."
        for n in range(sentences)
    )
    return f"# Reglamento\n\n## Trámites\n\n{body}\n"


def long_table(rows: int) -> str:
    lines = ["# Cuotas", "", "| Concepto | Importe |", "|---|---|"]
    lines += [f"| Concepto administrativo número {n} con descripción | ${n * 100}.00 |" for n in range(rows)]
    return "\n".join(lines) + "\n"


class TestHeadings:
    def test_every_chunk_keeps_its_heading_path(self) -> None:
        chunks = chunk_markdown(GUIDE)

        by_text = {chunk.text: chunk.heading for chunk in chunks}
        assert by_text["Texto general del reglamento."] == "Reglamento"
        assert by_text["El recargo por pago tardío es de 10 % sobre la mensualidad."] == "Reglamento > Pagos > Recargos"
        assert by_text["Las becas se renuevan cada semestre."] == "Reglamento > Becas"

    def test_every_piece_of_a_long_section_keeps_the_path(self) -> None:
        chunks = chunk_markdown(long_section(60))

        assert len(chunks) > 2
        assert {chunk.heading for chunk in chunks} == {"Reglamento > Trámites"}


class TestListsAndTables:
    def test_a_list_stays_with_its_introducing_sentence(self) -> None:
        markdown = (
            "# Constancias\n\nOtro párrafo.\n\nPara pedir una constancia necesitas:\n\n- Tu matrícula\n- El pago\n"
        )

        chunks = chunk_markdown(markdown, max_tokens=20, overlap=0)

        with_list = [chunk.text for chunk in chunks if "- Tu matrícula" in chunk.text]
        assert with_list == ["Para pedir una constancia necesitas:\n- Tu matrícula\n- El pago"]

    def test_every_piece_of_a_long_list_repeats_its_introducing_sentence(self) -> None:
        items = "\n".join(f"- Requisito número {n} para la inscripción al semestre" for n in range(40))
        markdown = f"# Inscripción\n\nLos requisitos son los siguientes:\n\n{items}\n"

        chunks = chunk_markdown(markdown, max_tokens=80, overlap=0)

        assert len(chunks) > 2
        assert all(chunk.text.startswith("Los requisitos son los siguientes:\n- Requisito") for chunk in chunks)
        found = [line for chunk in chunks for line in chunk.text.split("\n") if line.startswith("- ")]
        assert len(set(found)) == 40

    def test_every_piece_of_a_long_table_repeats_its_header_row(self) -> None:
        chunks = chunk_markdown(long_table(60), max_tokens=120, overlap=0)

        assert len(chunks) > 2
        for chunk in chunks:
            lines = chunk.text.split("\n")
            assert lines[:2] == ["| Concepto | Importe |", "|---|---|"]
            assert lines[2].startswith("| Concepto administrativo número")
        rows = {line for chunk in chunks for line in chunk.text.split("\n")[2:]}
        assert len(rows) == 60

    def test_with_the_default_overlap_every_table_piece_still_starts_with_its_header(self) -> None:
        chunks = chunk_markdown(long_table(80))

        assert len(chunks) > 2
        assert all(chunk.text.startswith("| Concepto | Importe |\n|---|---|\n") for chunk in chunks)


class TestSize:
    def test_chunks_without_overlap_stay_within_the_token_budget(self) -> None:
        chunks = chunk_markdown(long_section(80) + "\n" + long_table(80), max_tokens=150, overlap=0)

        assert len(chunks) > 4
        assert max(chunk.token_count for chunk in chunks) <= 150
        assert all(chunk.token_count == estimate_tokens(chunk.text) for chunk in chunks)

    def test_chunks_with_the_default_overlap_stay_within_the_token_budget(self) -> None:
        chunks = chunk_markdown(long_section(80))

        assert len(chunks) > 4
        assert max(chunk.token_count for chunk in chunks) <= CHUNK_TOKENS

    def test_consecutive_chunks_of_a_long_section_overlap_by_whole_sentences(self) -> None:
        chunks = chunk_markdown(long_section(40), max_tokens=120, overlap=40)

        assert len(chunks) > 2
        for previous, following in itertools.pairwise(chunks):
            before = split_sentences(previous.text)
            after = split_sentences(following.text)
            assert after[0] in before, "a chunk starts with a whole sentence of the one before"
            shared = before[before.index(after[0]) :]
            assert after[: len(shared)] == shared
            assert len(shared) < len(after), "and then goes on with new sentences"

    def test_a_short_document_is_one_chunk(self) -> None:
        chunks = chunk_markdown("Las clases inician el 11 de enero.")

        assert [(chunk.position, chunk.heading, chunk.text) for chunk in chunks] == [
            (0, "", "Las clases inician el 11 de enero.")
        ]


class TestPositions:
    def test_positions_are_sequential_from_zero(self) -> None:
        chunks = chunk_markdown(GUIDE + long_section(50) + long_table(30), max_tokens=100, overlap=20)

        assert [chunk.position for chunk in chunks] == list(range(len(chunks)))


class TestRunOnText:
    def test_a_sentence_longer_than_a_chunk_is_cut_between_words(self) -> None:
        chunks = chunk_markdown(
            "# Aviso\n\n" + " ".join(f"palabra{n}" for n in range(2000)), max_tokens=100, overlap=10
        )

        assert len(chunks) > 10
        assert all(chunk.token_count <= 100 for chunk in chunks)
        assert " ".join(" ".join(c.text.split()) for c in chunks).count("palabra1999") >= 1
