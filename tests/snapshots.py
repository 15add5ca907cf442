"""What a refused request must leave as it was: every row the database holds."""

from sqlalchemy import select

from bedel.db import Base, create_engine
from bedel.users.models import StaffSession

# Each request of a signed-in account moves its session's last-seen time (and so its updated_at): that alone may change.
MOVING = {StaffSession.__table__.c.last_seen_at, StaffSession.__table__.c.updated_at}


async def snapshot(database_url: str) -> dict[str, list[str]]:
    """Every row of every table, sorted, but the columns in MOVING."""
    engine = create_engine(database_url)
    rows: dict[str, list[str]] = {}
    try:
        async with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                columns = [column for column in table.c if column not in MOVING]
                rows[table.name] = sorted(repr(tuple(row)) for row in await connection.execute(select(*columns)))
    finally:
        await engine.dispose()
    return rows
