"""``python -m corridor.cli``: the ``corridor`` command."""

from corridor.cli import main

if __name__ == "__main__":
    main()
