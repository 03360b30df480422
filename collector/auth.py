"""``bearertokenauth``: bearer tokens that each map to a project.

Configured like the Collector's extension of that name, with a project per token::

    extensions:
      bearertokenauth:
        tokens: {"${env:TEAM_A_TOKEN}": team-a}
        tokens_file: /etc/sessionlens/tokens.yaml   # more ``token: project`` lines

A receiver enables it with ``auth: {authenticator: bearertokenauth}``. Tokens are compared
in constant time against every configured token, and never logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import yaml

from sessionlens.collector.component import Host

TYPE = "bearertokenauth"


@dataclass
class Config:
    tokens: dict[str, str] = field(default_factory=dict)
    """token → project."""
    tokens_file: str = ""
    """A YAML file holding more ``token: project`` pairs, every one read as text: ``0123``,
    ``12:30`` and ``yes`` are those characters, not the numbers or booleans YAML 1.1
    would make of them."""


class Unauthenticated(Exception):
    """The request carries no valid bearer token (the message never contains it)."""


class BearerTokenAuth:
    """Checks ``authorization: Bearer <token>`` values and names the token's project."""

    def __init__(self, tokens: dict[str, str]) -> None:
        if not tokens:
            raise ValueError("bearertokenauth: no tokens configured (set tokens or tokens_file)")
        if any(not token or not project for token, project in tokens.items()):
            raise ValueError("bearertokenauth: every token needs a non-empty value and project")
        self._tokens = [(token.encode(), project) for token, project in tokens.items()]

    def start(self, host: Host) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def project(self, authorization: str | None) -> str:
        """The project of the token in an ``authorization`` header value.

        Raises :class:`Unauthenticated` when it is missing, not a bearer token, or unknown.
        """
        if not authorization:
            raise Unauthenticated("missing bearer token (send 'authorization: Bearer <token>')")
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthenticated("the authorization header is not 'Bearer <token>'")
        presented = credentials.strip().encode()
        # Compare with every token, no early exit, so timing says nothing about which matched.
        found = None
        for token, project in self._tokens:
            if hmac.compare_digest(presented, token):
                found = project
        if found is None:
            raise Unauthenticated("invalid bearer token")
        return found


def _read_tokens_file(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            # BaseLoader resolves no types: a token is exactly the characters in the file.
            data = yaml.load(f, Loader=yaml.BaseLoader) or {}
    except OSError as exc:
        raise ValueError(f"bearertokenauth: cannot read tokens_file {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        # The parser's message would quote the file's content, i.e. tokens.
        raise ValueError(f"bearertokenauth: tokens_file {path} is not valid YAML") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(
            f"bearertokenauth: tokens_file {path} must hold one 'token: project' line per token"
        )
    return dict(data)


def create(config: Config, host: Host | None = None) -> BearerTokenAuth:
    tokens = dict(config.tokens)
    if config.tokens_file:
        tokens.update(_read_tokens_file(config.tokens_file))
    return BearerTokenAuth(tokens)
