"""Pure domain logic: money and pricing math (no I/O, no ORM)."""
