"""Binding tokens to decisions: authorization_details types and their validation."""
