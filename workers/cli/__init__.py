"""The ``tiktok-tracker`` command (Typer). Commands are thin: they parse
options, call the pure functions, and print tables or JSON."""
