"""Shipped example services: a customer directory over a legacy table, local and remote."""
