"""The offline engine's answers from passages: which lines of which passage are quoted."""

from bedel.llm.extractive import passage_answer
from bedel.llm.ports import Passage, Prompt
from bedel.texts.catalog import texts_for


def passage(text: str, heading: str = "Reglamento", title: str = "Reglamento") -> Passage:
    return Passage(chunk_id=1, document_id="d", title=title, heading=heading, text=text, score=1.0, relevance=1.0)


def answer(question: str, *passages: Passage) -> str | None:
    prompt = Prompt([], question, None, [], list(passages), "offline", 0.2, 500, "es")
    return passage_answer(prompt, texts_for("es"))


def quoted(text: str | None) -> list[str]:
    """The quoted lines, without the line naming the document."""
    assert text is not None
    return text.splitlines()[1:]


class TestSections:
    def test_the_sections_heading_says_what_its_lines_are_about(self) -> None:
        computing = passage(
            "Abierto de lunes a viernes de 7:00 a 22:00.\n\n"
            "Para recuperar tu contraseña acude al Centro de Cómputo con tu credencial.",
            heading="Servicios > Centro de Cómputo",
        )

        lines = quoted(answer("¿Cuál es el horario del centro de cómputo?", computing))

        assert lines[0] == "Abierto de lunes a viernes de 7:00 a 22:00."


class TestLines:
    def test_a_label_is_quoted_with_what_it_labels(self) -> None:
        library = passage("Préstamo: hasta 4 libros por 5 días. Multa por retraso:\nMXN 8,00 por libro por día.")

        assert "Multa por retraso: MXN 8,00 por libro por día." in quoted(answer("¿cuánto es la multa?", library))

    def test_a_list_item_is_quoted_whole(self) -> None:
        steps = passage(
            "1. Solicita tu ficha en admisiones. Costo de la\n   ficha: MXN 650,00.\n2. Presenta el examen.",
            heading="Nuevo ingreso",
        )

        assert any("650,00" in line for line in quoted(answer("¿cuánto cuesta la ficha de admisión?", steps)))

    def test_a_whole_answer_is_quoted_without_the_neighbour_with_the_other_figure(self) -> None:
        rules = passage(
            "Para tener derecho a examen ordinario el alumno debe haber asistido por lo menos al 80% de las clases. "
            "Con menos del 80% y al menos 60% de asistencia tiene derecho a examen extraordinario."
        )

        text = answer("¿Qué porcentaje de asistencia necesito para tener derecho a examen ordinario?", rules)

        assert text is not None and "80%" in text and "60%" not in text

    def test_a_figure_in_words_answers_how_many(self) -> None:
        rules = passage(
            "El alumno puede presentar como máximo tres exámenes extraordinarios por periodo. "
            "La calificación máxima que se asienta en un examen extraordinario es 8.0."
        )

        text = answer("¿Cuántos exámenes extraordinarios puedo presentar por periodo?", rules)

        assert text is not None and "tres" in text and "8.0" not in text


class TestWhatIsAsked:
    def test_how_much_is_not_answered_by_a_line_without_a_figure(self) -> None:
        procedure = passage(
            "Para inscribirte debes pagar la inscripción cuatrimestral en línea.", heading="Inscripción"
        )
        fees = passage("- Inscripción cuatrimestral: 2800 pesos.\n- Colegiatura: 4500 pesos al mes.", heading="Cuotas")

        lines = quoted(answer("¿Cuánto es la inscripción cuatrimestral?", procedure, fees))

        assert lines == ["- Inscripción cuatrimestral: 2800 pesos."]

    def test_a_price_is_answered_by_one_line_covering_what_is_asked(self) -> None:
        fees = passage(
            "| Concepto | Importe |\n|---|---|\n| Examen a título de suficiencia | $900.00 |\n"
            "| Reposición de credencial | $180.00 |",
            heading="Cuotas",
        )

        assert answer("¿Cuánto cuesta la reposición del título?", fees) is None
        assert any("$180.00" in line for line in quoted(answer("¿Cuánto cuesta la reposición de credencial?", fees)))

    def test_costing_nothing_answers_a_price(self) -> None:
        fees = passage("| Documento | Costo |\n|---|---|\n| Constancia para el IMSS | Sin costo |", heading="Trámites")

        assert "Sin costo" in (answer("necesito una constancia para el imss, cuanto cuesta", fees) or "")

    def test_the_school_itself_is_not_what_is_asked_about(self) -> None:
        directory = passage(
            "Centro de Estudios, A.C. Blvd. Campestre 2850.\nConmutador: 477 712 3400.", heading="Directorio"
        )

        assert "477 712 3400" in (answer("¿Cuál es el teléfono de la escuela?", directory) or "")

    def test_when_prefers_the_passage_with_a_date(self) -> None:
        scholarships = passage("Las becas no cubren los exámenes extraordinarios.", heading="Becas")
        calendar = passage("Exámenes extraordinarios: del 21 al 25 de junio.", heading="Calendario")

        assert "21 al 25 de junio" in (answer("cuando son los extras", scholarships, calendar) or "")

    def test_a_date_asked_is_not_answered_with_the_fee_beside_it(self) -> None:
        payments = passage(
            "Cada mensualidad se paga a más tardar el día 10 del mes. A partir del día 11 se cobra un recargo "
            "del 10 % de la mensualidad ($450.00 MXN).",
            heading="Cuotas > Fechas de pago y recargos",
        )

        lines = quoted(answer("¿Hasta qué día del mes se paga la colegiatura?", payments))

        assert lines[0] == "Cada mensualidad se paga a más tardar el día 10 del mes."

    def test_how_much_a_fee_is_is_not_answered_by_a_figure_that_is_no_amount(self) -> None:
        payments = passage(
            "Envía el comprobante de tu colegiatura a pagos@udx.mx si no aparece en tres días hábiles.",
            heading="Colegiaturas > Cómo se paga",
        )
        fees = passage("- Colegiatura: 4500 pesos al mes.\n- Credencial: 200 pesos.", heading="Colegiaturas > Importes")

        lines = quoted(answer("¿cuánto es la colegiatura en la UDX?", payments, fees))

        assert lines == ["- Colegiatura: 4500 pesos al mes."]

    def test_opening_hours_are_not_answered_with_another_channels_hours(self) -> None:
        directory = passage(
            "Horario de atención de las oficinas: lunes a viernes de 9:00 a 17:00.\n\n"
            "Caja también atiende por WhatsApp, solo por mensaje, de lunes a sábado de 8:00 a 20:00.",
            heading="Directorio",
        )

        office = quoted(answer("¿Cuál es el horario de atención de Caja?", directory))
        chat = quoted(answer("¿Cuál es el horario de Caja por WhatsApp?", directory))

        assert "9:00 a 17:00" in office[0] and not any("20:00" in line for line in office)
        assert "20:00" in chat[0]
