"""pgsearch: search and curate computer-vision datasets inside PostgreSQL with pgvector."""

from pgsearch.errors import PgsearchError

__version__ = "0.1.0"
__all__ = ["PgsearchError", "__version__"]
