"""API keys kept in the database: created with a role and a name, shown once, stored only as a hash."""
