"""Pure loss functions (no module state)."""
