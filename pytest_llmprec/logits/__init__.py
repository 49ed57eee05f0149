"""Logits and tokens: msit logitscmp metrics, near-tie-aware token verdicts, bad-case analysis."""
