"""The SQLite backend: SqliteStore (store.py) on one file, one module per concern it keeps."""
