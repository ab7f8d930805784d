"""`python -m shiftlab` is the `shiftlab` command."""

from shiftlab.cli import main

if __name__ == "__main__":
    main()
