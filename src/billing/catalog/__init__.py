"""The versioned, multi-currency plan catalog."""
