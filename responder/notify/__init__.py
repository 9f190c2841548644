"""Notifications: which events to tell (notices), how each receiver is told, the sender."""
