"""Evidence records: who decided what, and by which rule."""
