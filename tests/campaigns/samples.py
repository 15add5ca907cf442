"""What the campaign tests send and to whom."""

from typing import Any

# Real Mexican mobile numbers' shapes: the ledger skips what a carrier could not deliver to.
STUDENTS_CSV = """matricula,nombre,telefono,correo,carrera,meses_vencidos,adeudo
A001,Ana Ruiz,+52 55 1111 2222,ana@alumnos.example.edu,Derecho,2,4500.00
A002,Beto Díaz,+52 55 3333 4444,,Derecho,1,1200.50
A003,Carla Gómez,+52 55 5555 6666,carla@alumnos.example.edu,Ingeniería,0,0
A004,Dario Paz,+52155667788,dario@alumnos.example.edu,Derecho,3,300
"""


def reminder(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Recordatorio de pago",
        "channel": "whatsapp_template",
        "message": {
            "template": {
                "name": "recordatorio_pago",
                "language": "es_MX",
                "parameters": ["{{ name }}", "{{ adeudo }}"],
            }
        },
        "audience": {"filter": "meses_vencidos >= 1"},
    } | overrides
