"""`python -m app ...`: serve, db upgrade, seed (and the coach commands)."""

from app.cli import main

if __name__ == "__main__":
    main()
