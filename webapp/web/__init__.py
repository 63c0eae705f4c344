"""The website: server-rendered pages (Jinja) for accounts, subjects, uploads and results."""
