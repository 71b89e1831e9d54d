"""Payments: payment methods, charges and refunds through a pluggable gateway."""
