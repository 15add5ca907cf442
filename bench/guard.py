"""The output guard's cost per answer: CPU of `withhold_others` (finding candidates, hashing them,
the indexed lookup) on a database holding 10,000 and 100,000 students.

Run: `.venv/bin/python bench/guard.py [--sizes 10000,100000] [--database-url URL]` (prints Markdown
for bench/GUARD_RESULTS.md). Without `--database-url` each size gets a new SQLite file; with a
PostgreSQL URL the database is emptied (schema dropped) and migrated for each size.

Students are imported through `import_students`, the path the API and CLI take, so their lookup
keys are the ones production writes. Each answer is guarded in an open session, as `ChatService`
guards it inside the transaction that stores it; CPU is this process's (`time.process_time`),
so the database server's own work on PostgreSQL is not in it, the round trip's client side is.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from bedel import migrate  # noqa: E402
from bedel.chat.guard import withhold_others  # noqa: E402
from bedel.db import create_engine, create_sessionmaker  # noqa: E402
from bedel.students.repository import StudentRepository  # noqa: E402
from bedel.students.service import import_students  # noqa: E402

ROUNDS = 2000
CALLER = "+525500000000"
GIVEN = ["Ana", "Luis", "María", "José", "Sofía", "Diego", "Valeria", "Marco", "Lucía", "Pedro"]
SURNAMES = ["Pérez", "Ruiz", "García", "Hernández", "López", "Martínez", "Salinas", "Cruz", "Ramírez", "Torres"]
ANSWERS = {
    "short, no identifier": "¡Hola! Las inscripciones abren el lunes. ¿Te ayudo con algo más?",
    "the caller's balance": (
        "Hola Ana Pérez Pérez. Tu saldo pendiente es de $4,500 y vence el 15 de septiembre. "
        "Puedes pagar en caja o por transferencia a la cuenta 0123 4567 8901 2345 6789, con tu matrícula "
        "A0000000 como referencia."
    ),
    "a long passage (120 words)": (
        "Según el reglamento, la baja temporal se solicita en servicios escolares antes de la semana ocho "
        "del periodo. Debes llevar una identificación oficial, el formato de solicitud firmado y la "
        "constancia de no adeudo de la biblioteca y de la caja. La baja temporal conserva tu lugar por un "
        "máximo de dos periodos; si no te reinscribes en ese plazo, la baja se vuelve definitiva y tendrás "
        "que presentar de nuevo el examen de admisión. Las materias en curso no se califican y no cuentan "
        "como reprobadas. Si tienes una beca, se suspende mientras dure la baja y se reactiva al volver, "
        "siempre que tu promedio sea de 8.5 o más. Para dudas escribe a escolares@universidad.edu.mx o "
        "llama al 55 5000 1000, de lunes a viernes de 9 a 18 horas."
    ),
    "another student's name and phone": (
        "Tu saldo es de $4,500. Luis Ruiz Salinas debe $9,800 y su teléfono es 55 0000 0042. ¿Algo más?"
    ),
}


def students_csv(count: int) -> bytes:
    lines = ["telefono,nombre,matricula,correo,adeudo"]
    for n in range(count):
        name = f"{GIVEN[n % 10]} {SURNAMES[n // 10 % 10]} {SURNAMES[n // 100 % 10]}"
        lines.append(f"+5255{n:08d},{name} {n},A{n:07d},alumno{n}@universidad.edu.mx,{n % 9000}")
    # One student with the name and phone the leaking answer uses.
    lines.append("+525500000042,Luis Ruiz Salinas,B0000042,luis@universidad.edu.mx,9800")
    return ("\n".join(lines) + "\n").encode()


async def measure(url: str, count: int) -> list[tuple[str, float, float, float, int]]:
    engine = create_engine(url)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await asyncio.to_thread(migrate.upgrade, url)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await import_students(session, students_csv(count), "alumnos.csv")
    rows = []
    async with sessions() as session:
        repository = StudentRepository.from_session(session)
        asked: list[int] = []

        async def lookup(keys: Sequence[str]) -> list[tuple[str, str, str]]:
            asked.append(len(keys))
            return await repository.owners_of_keys(keys)

        for label, answer in ANSWERS.items():
            for _ in range(50):  # warm the statement cache and the pages
                await withhold_others(answer, lookup, caller=CALLER, placeholder="[dato reservado]")
            cpu, wall = [], []
            asked.clear()
            for _ in range(ROUNDS):
                started_cpu, started_wall = time.process_time(), time.perf_counter()
                guarded = await withhold_others(answer, lookup, caller=CALLER, placeholder="[dato reservado]")
                cpu.append(time.process_time() - started_cpu)
                wall.append(time.perf_counter() - started_wall)
            keys = asked[0] if asked else 0
            withheld = sum(guarded.withheld.values())
            rows.append(
                (
                    f"{label} (withheld: {withheld})" if withheld else label,
                    statistics.fmean(cpu) * 1e3,
                    statistics.quantiles(cpu, n=20)[18] * 1e3,
                    statistics.quantiles(wall, n=20)[18] * 1e3,
                    keys,
                )
            )
    await engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    for count in (int(size) for size in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
            rows = asyncio.run(measure(url, count))
        backend = "PostgreSQL" if args.database_url else "SQLite"
        print(f"\n### {count:,} students, {backend}\n")
        print("| answer | CPU mean (ms) | CPU p95 (ms) | wall p95 (ms) | keys looked up |")
        print("|---|---:|---:|---:|---:|")
        for label, mean, p95, wall, keys in rows:
            print(f"| {label} | {mean:.3f} | {p95:.3f} | {wall:.3f} | {keys} |")


if __name__ == "__main__":
    main()
