"""Usage metering: ingestion, rollups, summaries and usage on invoices."""
