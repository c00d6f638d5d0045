"""Small shared helpers (htmx, http caching, metrics, logging)."""
