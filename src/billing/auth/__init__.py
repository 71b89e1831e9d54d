"""Authentication (API keys, JWT), roles and permissions, rate limits."""
