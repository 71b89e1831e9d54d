"""Tax: rates as data, the built-in engine, and the providers finalization calls once per batch."""
