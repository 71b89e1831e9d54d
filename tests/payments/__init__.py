"""Tests for billing.payments."""
