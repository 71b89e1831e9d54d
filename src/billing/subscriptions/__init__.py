"""Subscriptions: lifecycle, billing periods, plan and quantity changes."""
