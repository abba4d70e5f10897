"""The bank's rules: money, accounts, the ledger and the use cases, free of any framework."""
