"""``python -m portradar`` runs the command line."""

from portradar.cli.app import main

main()
