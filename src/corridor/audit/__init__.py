"""Evidence records: who decided what, and by which rule; hash-chained per writer through an
evidence sink (audit/sinks.py: the store's table, a JSON Lines file, memory)."""
