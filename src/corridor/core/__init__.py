"""Protocol pieces every role needs. Imports nothing else from corridor."""
