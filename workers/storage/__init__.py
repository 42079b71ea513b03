"""Results in SQL (SQLite embedded by default, Postgres in production)."""
