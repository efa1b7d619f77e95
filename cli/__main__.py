"""``python -m kadspec``."""

from kadspec.main import main

main()
