"""afilo-db: the schema, data access and database operations of the Afilo marketplace."""

__version__ = "0.1.0"
