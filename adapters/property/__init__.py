"""Property-management company (物业) exports."""
