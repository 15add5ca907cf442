"""The staff console at /console: server-rendered pages, htmx, sessions and roles (docs/decisions/0014)."""
