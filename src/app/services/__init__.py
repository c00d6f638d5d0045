"""Services own the logic and the clients (SQL, cache, LLM); routes only call them."""
