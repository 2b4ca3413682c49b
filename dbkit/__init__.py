"""dbkit: the small shared module of the async database-connections course.

Each file does one job and names the notebook that explains it:

settings   where the database is (DATABASE_URL, DB_*, or else none): reads, starts nothing
database   the course's database: the configured one, or the embedded server, started
server     the embedded PostgreSQL: start or attach, stop, reset
errors     setup problems as one clear line
urls       where a URL points (host_of) and how to print it (shown)
doctor     `make doctor`: each check of the machine, one line each
engine     engine, session factory, scoped session: the seed's and the recommended
databases  a fresh, isolated database per notebook
migrate    Alembic from inside a running event loop
models     the course's domain: a lending library
show       pandas views of tables, alembic_version and the pool
checks     leaked connections, checked before dispose
retry      retry a transaction only when that is safe
pgbouncer  PgBouncer in front of the server
demo       what notebooks and tests do to stage a failure on purpose, written once
proxy      a TCP proxy on 127.0.0.1 that can black-hole its connections
"""

from dbkit.database import database_url, target
from dbkit.databases import drop_database, fresh_database
from dbkit.errors import SetupError

__all__ = ["SetupError", "database_url", "drop_database", "fresh_database", "target"]
