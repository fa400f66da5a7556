"""Who may read the store through the query door: one user and password per home.

The password is made at the first ``stagelog up`` and kept in ``$STAGELOG_HOME/reader.password``
(mode 0600, the home itself 0700), unless ``STAGELOG_QUERY_PASSWORD`` gives one. The user is
``STAGELOG_QUERY_USER`` (default ``stagelog``). ``run/collector.json`` names the file, never
the password.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from logging_backend import config
from logging_backend.errors import ConfigError

PASSWORD_FILE = "reader.password"


@dataclass(frozen=True)
class Credentials:
    """A user and password of the query door."""

    user: str
    password: str

    def matches(self, user: str | None, password: str | None) -> bool:
        """Whether ``user``/``password`` are these credentials (constant-time compare)."""
        ok_user = hmac.compare_digest((user or "").encode(), self.user.encode())
        ok_password = hmac.compare_digest((password or "").encode(), self.password.encode())
        return ok_user and ok_password

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password='***')"


def password_file(settings: config.Settings) -> Path:
    """Where the reader's password is kept (0600)."""
    return settings.home / PASSWORD_FILE


def private_home(home: Path) -> None:
    """Create ``home`` if needed and make it 0700 (every file under it is the owner's)."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)


def ensure(settings: config.Settings) -> Credentials:
    """The home's reader credentials, making the password file at the first call.

    Raises:
        ConfigError: the password file exists but cannot be read or is empty.
    """
    if settings.query_password:
        return Credentials(settings.query_user, settings.query_password)
    path = password_file(settings)
    if not path.exists():
        private_home(settings.home)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return load(settings)


def load(settings: config.Settings) -> Credentials:
    """The home's reader credentials (environment, else the password file).

    Raises:
        ConfigError: no password is given and the file is missing, unreadable or empty.
    """
    if settings.query_password:
        return Credentials(settings.query_user, settings.query_password)
    path = password_file(settings)
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the query password {path} ({exc}); `stagelog up` makes it, or set "
            f"{config.QUERY_PASSWORD}"
        ) from exc
    if not password:
        raise ConfigError(f"the query password file {path} is empty")
    return Credentials(settings.query_user, password)
