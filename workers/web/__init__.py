"""The review web app: a small server-rendered site (Starlette + Jinja2 under
uvicorn) over the results database and media store. Logic lives in
``workers.review``; this package only turns requests into calls and pages."""
