"""Accounts and their payment methods."""
