"""HTTP plumbing shared by every router: errors, pagination, idempotency, request context."""
