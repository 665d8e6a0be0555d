"""Redaction: secrets are masked by the name they travel under, then scrubbed everywhere."""

from __future__ import annotations

import pytest

from fastapi_e2e.diagnosis.record import Body
from fastapi_e2e.diagnosis.redact import MASK, Redactor, is_secret_name
from fastapi_e2e.diagnosis.render import body_view


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "X-API-Key",
        "api_key",
        "access_token",
        "client_secret",
        "password",
        "new_password",
        "x-auth",
        "X-CSRF-Token",
        "session_id",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["author", "content-type", "email", "name", "authority_id"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_headers_are_masked_and_their_values_scrubbed_elsewhere() -> None:
    redactor = Redactor()
    shown = redactor.headers(
        [
            (b"authorization", b"Bearer abc.def.ghi"),
            (b"cookie", b"sid=s3cr3tcookie; theme=dark"),
            (b"accept", b"*/*"),
        ]
    )
    assert shown == [("authorization", MASK), ("cookie", MASK), ("accept", "*/*")]
    text = "echoed abc.def.ghi and s3cr3tcookie; Bearer stays"
    assert redactor.scrub(text) == f"echoed {MASK} and {MASK}; Bearer stays"


def test_credentials_with_base64_padding_are_scrubbed_elsewhere() -> None:
    redactor = Redactor()
    redactor.headers(
        [
            (b"authorization", b"Basic dXNlcjpwYXNzd29yZA=="),
            (b"x-auth", b"Token opaque-t0ken="),
        ]
    )
    text = "echoed dXNlcjpwYXNzd29yZA== and opaque-t0ken="
    assert redactor.scrub(text) == f"echoed {MASK} and {MASK}"


def test_json_fields_are_masked_at_any_depth() -> None:
    redactor = Redactor()
    shown = redactor.json({"user": {"name": "a", "password": "pw-1234"}, "tokens": ["t-1", "t-2"]})
    assert shown == {"user": {"name": "a", "password": MASK}, "tokens": [MASK, MASK]}


def test_query_and_form_parameters_are_masked_by_name() -> None:
    redactor = Redactor()
    assert (
        redactor.url("/login?user=bob&api_key=k%2F123&x=1") == f"/login?user=bob&api_key={MASK}&x=1"
    )
    assert redactor.scrub("k/123 and k%2F123") == f"{MASK} and {MASK}"


def test_sql_parameters_are_masked_by_bind_name() -> None:
    redactor = Redactor()
    assert redactor.parameters(("email", "password_hash"), ("a@b.c", "$2b$hash")) == (
        "a@b.c",
        MASK,
    )
    assert redactor.parameters(None, {"token": "tok-999", "id": 3}) == {"token": MASK, "id": 3}


def test_short_values_are_not_scrubbed_from_free_text() -> None:
    redactor = Redactor()
    redactor.mask("abc")
    assert redactor.scrub("abc") == "abc"


def test_secret_fields_of_json_cut_short_are_masked_whatever_their_type() -> None:
    redactor = Redactor()
    text = (
        '{"refresh_tokens": ["tok-aaaa1111", "tok-bbbb2222"], "pin_password": 12345678, '
        '"credentials": {"user": "bob", "key": "k-ssss9999"}, "api_key": null, "note": "lo'
    )
    body = Body(limit=len(text))
    body.add(text.encode() + b"ng text past the limit")
    shown = body_view(body, [("content-type", "application/json")], redactor)
    assert shown is not None
    assert shown["text"] == (
        f'{{"refresh_tokens": ["{MASK}", "{MASK}"], "pin_password": "{MASK}", '
        f'"credentials": {{"user": "{MASK}", "key": "{MASK}"}}, "api_key": null, "note": "lo'
    )
