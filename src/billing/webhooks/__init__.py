"""Outgoing webhooks: endpoints, signing secrets, deliveries from the events outbox."""
