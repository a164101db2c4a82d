"""Typed errors raised by library code; the CLI turns each into one line and exit code 1."""


class MlopsmortemError(Exception):
    """Base class of every error this package raises on purpose."""


class SourceError(MlopsmortemError):
    """A source list could not be read (missing file, HTTP error, undecodable bytes)."""


class FetchError(MlopsmortemError):
    """A page could not be fetched. `kind` is a short machine-readable reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RefusedURL(FetchError):
    """A URL the safety rules do not allow (scheme, private or link-local address)."""

    def __init__(self, message: str) -> None:
        super().__init__("refused", message)


class RobotsBlocked(FetchError):
    """robots.txt disallows the URL for our user agent."""

    def __init__(self, message: str) -> None:
        super().__init__("blocked", message)


class ExtractError(MlopsmortemError):
    """Stored bytes could not be turned into text."""


class LockedError(MlopsmortemError):
    """Another process holds the crawl lock on this database."""


class SearchError(MlopsmortemError):
    """A search could not run: empty query, empty database, unknown filter value."""


class NotFoundError(MlopsmortemError):
    """A named thing (story id, model) does not exist."""


class ModelError(MlopsmortemError):
    """The embedding model could not be loaded offline."""


class DatabaseError(MlopsmortemError):
    """The database file cannot be opened or created (missing directory, not SQLite), or its
    schema is older than this version and the command only reads (it never upgrades)."""


class PortInUseError(MlopsmortemError):
    """A server could not listen on its host and port (taken by another program, or refused)."""


class MissingExtraError(MlopsmortemError):
    """A command needs packages of an install extra that is not installed."""
