"""The builders behind tests/tiny_models.py (tokenizer, key tables, components); import them from there."""
