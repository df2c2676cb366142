"""The HTTP gateway (FastAPI): department systems push and read records under ``/v1``."""
