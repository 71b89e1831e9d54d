"""Invoices: building, numbering, finalizing, voiding; immutable once finalized."""
