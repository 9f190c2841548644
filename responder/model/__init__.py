"""The vocabulary every floor shares: alerts, errors, the worker loop, backoff and holder ids."""
