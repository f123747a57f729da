"""Small shared helpers: atomic file writes, Hydra resolvers, config checks."""
