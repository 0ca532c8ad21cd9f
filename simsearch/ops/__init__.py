"""Flask-free operations: what the CLI, the JSON API and the UI do, each in one place."""
