"""Hide secrets in what the report and trace files show.

Values are masked by the name they travel under (headers, JSON fields, form and
query parameters, SQL bind parameters), and every value masked once is then
scrubbed from the whole text, wherever else it appears (a token echoed in a
response body, a password bound to a column without a telling name).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

MASK = "***"

SECRET_NAME = re.compile(
    r"(?:^|[-_ ])auth(?:[-_ ]|$)|authori[sz]ation|authenticat|token|secret|passw|passphrase"
    r"|pwd|api[-_ ]?key|cookie|credential|private[-_ ]?key|session[-_ ]?id|signature"
    r"|csrf|xsrf",
    re.IGNORECASE,
)
"""Names whose values are secrets: Authorization, Cookie, Set-Cookie, X-API-Key,
access_token, client_secret, password, ..."""

# Shorter values are not scrubbed from free text: masking every "1" or "yes" in a
# report would hide more than it protects.
MIN_SCRUBBED_LENGTH = 4


def is_secret_name(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


class Redactor:
    """Masks secrets by name and remembers them, to scrub them from any text later."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def mask(self, value: Any) -> str:
        """Remember ``value`` as a secret; return the mask."""
        text = value if isinstance(value, str) else str(value)
        self.secrets.add(text)
        decoded = urllib.parse.unquote_plus(text)
        if decoded != text:
            self.secrets.add(decoded)
        return MASK

    def header(self, name: str, value: str) -> str:
        """The value to show for header ``name``: masked if its name says secret."""
        if not is_secret_name(name):
            return value
        lowered = name.lower()
        if lowered in ("cookie", "set-cookie"):
            # Every "name=value" of a Cookie is a cookie; Set-Cookie's first is, and the
            # rest are attributes (Path, Expires).
            pieces = value.split(";") if lowered == "cookie" else value.split(";")[:1]
            for piece in pieces:
                self.mask(piece.partition("=")[2].strip() if "=" in piece else piece.strip())
        else:
            # "Bearer <credentials>": the credentials alone are the secret too, "="
            # (base64 padding) and all.
            for credentials in value.split(None, 1)[1:]:
                self.mask(credentials.strip())
        return self.mask(value)

    def headers(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
        shown = []
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1")
            shown.append((name, self.header(name, raw_value.decode("latin-1"))))
        return shown

    def query(self, query: str) -> str:
        """A query string (or form body) with secret-named values masked, else as given."""
        pairs = []
        for pair in query.split("&"):
            name, sep, value = pair.partition("=")
            if sep and is_secret_name(urllib.parse.unquote_plus(name)):
                pair = f"{name}={self.mask(value)}"
            pairs.append(pair)
        return "&".join(pairs)

    def url(self, url: str) -> str:
        base, sep, query = url.partition("?")
        return f"{base}?{self.query(query)}" if sep else url

    def json(self, value: Any) -> Any:
        """A copy of decoded JSON with the values of secret-named keys masked."""
        if isinstance(value, dict):
            return {
                key: self.mask_tree(item) if is_secret_name(str(key)) else self.json(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value

    def mask_tree(self, value: Any) -> Any:
        """Mask a secret field's value; a nested object keeps its shape, leaves masked."""
        if isinstance(value, dict):
            return {key: self.mask_tree(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.mask_tree(item) for item in value]
        if value is None or isinstance(value, bool):
            return value
        return self.mask(value)

    def parameters(self, names: Sequence[str] | None, parameters: Any) -> Any:
        """SQL parameters with those bound to secret-named columns masked.

        ``names`` are the bind names in positional order (None when unknown); a dict
        of parameters is masked by its keys.
        """
        if isinstance(parameters, dict):
            return {
                key: self.mask(value) if is_secret_name(str(key)) and value is not None else value
                for key, value in parameters.items()
            }
        if isinstance(parameters, (tuple, list)) and names:
            return type(parameters)(
                self.mask(value)
                if index < len(names) and is_secret_name(names[index]) and value is not None
                else value
                for index, value in enumerate(parameters)
            )
        return parameters

    def scrub(self, text: str) -> str:
        """``text`` with every remembered secret replaced by the mask."""
        secrets = [s for s in self.secrets if len(s) >= MIN_SCRUBBED_LENGTH and s != MASK]
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text
