"""Bounds for the integers callers page with. A number the database cannot hold would fail
inside the query (a 500); bounded here, it is a 422 that names the parameter."""

# Past this, paging by offset is the wrong tool (lists that long page by a cursor), and the
# bound keeps a caller from making the database count millions of rows only to skip them.
MAX_OFFSET = 100_000
# The largest value of the columns cursors compare with: INTEGER in PostgreSQL (4 bytes) for a
# message's sequence number, BIGINT for ledger ids.
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
