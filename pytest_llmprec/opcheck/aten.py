"""Operator references: aten (being written)."""
