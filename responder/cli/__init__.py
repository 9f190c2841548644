"""The ddb-responder command line: the entry point, the HTTP API client, the audit commands."""
