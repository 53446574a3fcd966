"""The admin console: server-rendered pages (``routes``), the session cookie (``session``) and CSRF
tokens (``csrf``); templates and static assets ship in this package."""
