"""Shared parsing helpers for the department adapters: written once, used by every adapter."""
