"""Operator references: torch_modules (being written)."""
