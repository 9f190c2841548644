"""Where a notification comes in: the service behind the HTTP layer, the handling of a request."""
