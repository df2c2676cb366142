"""Admin operations on top of the chain layer: reviewed policy files (plan, then apply)."""
