"""Small documents built in code: a real PDF with a text layer and a DOCX with headings, a list and a table."""

import io

import docx


def pdf_with_text(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF whose content stream draws `lines` (Latin-1 text) in Helvetica."""
    operators = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    operators += [f"({line}) Tj T*" for line in lines]
    operators.append("ET")
    stream = "\n".join(operators).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def certificates_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Trámites escolares", level=1)
    document.add_paragraph("Estos son los trámites más pedidos.")
    document.add_heading("Constancias", level=2)
    document.add_paragraph("Para pedir una constancia necesitas:")
    document.add_paragraph("Tu matrícula", style="List Bullet")
    document.add_paragraph("El comprobante de pago", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table.rows[0].cells, ("Documento", "Costo"), strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells, ("Constancia simple", "$180"), strict=True):
        cell.text = text
    document.add_heading("Certificados", level=2)
    document.add_paragraph("El certificado total tarda veinte días hábiles.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


FEES = """# Colegiaturas y pagos

## Fechas de vencimiento

Las mensualidades vencen el día 10 de cada mes.

## Pago extemporáneo

Toda mensualidad pagada tarde genera un recargo del 10 % del importe vencido.
Por ejemplo, una mensualidad de $4,850.00 pagada el día 15 suma $485.00 de recargo.
"""
CALENDAR = """# Calendario académico 2027

## Semestre 2027-1

El inicio de clases es el 11 de enero de 2027. Las vacaciones de primavera son del 29 de marzo al 9 de abril.
"""
LIBRARY = """# Biblioteca

## Préstamo a domicilio

La biblioteca presta hasta cinco libros durante dos semanas, renovables una vez en línea.
"""
CERTIFICATES = """# Constancias y certificados

## Constancia de estudios

La constancia de estudios se solicita en el Portal del Alumno, en la sección Trámites, y se paga en línea.

## Tiempo de entrega

La constancia de estudios se entrega en 3 días hábiles a partir del pago.
"""
KNOWLEDGE = {
    "colegiaturas.md": FEES,
    "calendario.md": CALENDAR,
    "biblioteca.md": LIBRARY,
    "constancias.md": CERTIFICATES,
}
