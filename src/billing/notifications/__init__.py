"""Notifications: customer emails rendered from outbox events and sent by the worker."""
