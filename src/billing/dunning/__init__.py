"""Dunning: reminders, warnings and blocking for accounts whose payments keep failing."""
