"""Department adapter tests."""
