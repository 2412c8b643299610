"""The keel command-line tool."""
