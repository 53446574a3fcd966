"""The admin console: server-rendered pages (``routes``) and the session cookie (``session``); templates and
static assets ship in this package. Its CSRF tokens are made in ``auth.csrf`` (the API checks them too)."""
