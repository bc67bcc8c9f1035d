"""Database access (SQLAlchemy Core; SQLite file by default)."""
