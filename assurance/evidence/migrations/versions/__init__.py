"""The ledger schema's revisions, oldest first (``r0001_ledger`` is the table as first released)."""
