"""Two things every part of dbkit needs from a database URL, written once.

* `host_of(url)`: where it points. A URL for a unix socket (the embedded server's) names
  the socket's folder as `?host=/path`, and has no host; others name a host.
* `shown(url)`: the URL to print, password masked.
"""

from __future__ import annotations

from urllib.parse import unquote

from sqlalchemy.engine import URL


def host_of(url: URL, default: str = "localhost") -> str:
    """The URL's `?host=` (a unix socket folder) when it has one, else its host name, else
    `default`."""
    host = url.query.get("host") or url.host or default
    return host if isinstance(host, str) else host[0]


def shown(url: URL) -> str:
    """The URL to print: password masked, query as written (?host=/my course, not %2F...)."""
    base = unquote(url.set(query={}).render_as_string(hide_password=True))
    query = "&".join(
        f"{k}={v}" for k, vs in url.query.items() for v in ([vs] if isinstance(vs, str) else vs)
    )
    return f"{base}?{query}" if query else base
