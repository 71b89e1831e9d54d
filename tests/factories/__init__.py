"""Small typed factories per domain: they go through the public API, like a client."""
