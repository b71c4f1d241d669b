"""Renderers: text (rich), JSON (the contract in DESIGN.md) and SARIF 2.1.0."""
