"""Use cases, one module each, that the CLI, the web app and tests call: they
return data (rows, reports, plans) and never print. The CLI only parses
arguments and renders what these return."""
