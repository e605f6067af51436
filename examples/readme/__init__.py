"""The README's Python snippets, as files the README includes verbatim (tests/test_docs.py) and
tests run (tests/resource/test_by_hand.py, tests/examples/test_readme_snippets.py)."""
