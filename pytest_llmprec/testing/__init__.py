"""Testing helpers for users' own tests: hypothesis strategies for LLM numerics
(``pytest_llmprec.testing.strategies``)."""
