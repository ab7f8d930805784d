"""`python -m proxy -c shiftlab.yaml` is `shiftlab proxy -c shiftlab.yaml`."""

from shiftlab.cli import proxy_main

if __name__ == "__main__":
    proxy_main()
