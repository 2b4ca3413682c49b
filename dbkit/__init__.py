"""dbkit: the small shared module of the async database-connections course.

Each file does one job and names the notebook that explains it:

settings   where the database is (DATABASE_URL, DB_*, or the embedded server)
server     the embedded PostgreSQL: start or attach, stop, reset
errors     setup problems as one clear line
engine     engine, session factory, scoped session: the seed's and the recommended
databases  a fresh, isolated database per notebook
migrate    Alembic from inside a running event loop
models     the course's domain: a lending library
show       pandas views of tables, alembic_version and the pool
checks     leaked connections, checked before dispose
retry      retry a transaction only when that is safe
pgbouncer  PgBouncer in front of the server
demo       what notebooks and tests do to stage a failure on purpose, written once
"""

from dbkit.databases import drop_database, fresh_database
from dbkit.errors import SetupError
from dbkit.settings import database_url, target

__all__ = ["SetupError", "database_url", "drop_database", "fresh_database", "target"]
