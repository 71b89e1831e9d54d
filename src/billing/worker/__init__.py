"""The worker: the billing clock that repeatedly asks the database what is due."""
