"""Operator references: atb (being written)."""
