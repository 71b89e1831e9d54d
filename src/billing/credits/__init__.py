"""Account credit: a ledger per account and currency; the balance is its sum."""
