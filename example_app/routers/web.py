"""Browser pages: sign in with an API key, then list and add your items.

The pages are plain HTML whose scripts call small JSON endpoints; the signed-in user
is kept in an HttpOnly cookie signed with a per-process secret (so restarting the
app signs everyone out, which is fine for this example).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy import select

from example_app import services
from example_app.errors import Unauthorized
from example_app.models import User
from example_app.routers.deps import SessionDep
from example_app.schemas import ItemCreate, ItemRead

router = APIRouter(tags=["web"], include_in_schema=False)

COOKIE = "session"

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<form id="login">
  <label>Email <input name="email" type="email" required></label>
  <label>API key <input name="api_key" type="password" required></label>
  <button type="submit">Sign in</button>
</form>
<p id="error" role="alert"></p>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/session", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(Object.fromEntries(form)),
  });
  if (response.ok) { window.location = "/my/items"; return; }
  document.getElementById("error").textContent = (await response.json()).detail;
});
</script>
</body></html>
"""

ITEMS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>My items</title></head>
<body>
<h1>Items of {name}</h1>
<ul id="items">{items}</ul>
<form id="new-item">
  <label>Title <input name="title" required></label>
  <label>Price (cents) <input name="price_cents" type="number" min="0" required></label>
  <button type="submit">Add item</button>
</form>
<p id="error" role="alert"></p>
<script>
document.getElementById("new-item").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/my/items", {{
    method: "POST",
    headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{
      title: form.get("title"), price_cents: Number(form.get("price_cents")),
    }}),
  }});
  if (response.ok) {{ window.location.reload(); return; }}
  document.getElementById("error").textContent = (await response.json()).detail;
}});
</script>
</body></html>
"""


class Credentials(BaseModel):
    email: str
    api_key: str


def _signature(request: Request, user_id: int) -> str:
    secret: bytes = request.app.state.session_secret
    return hmac.new(secret, str(user_id).encode(), hashlib.sha256).hexdigest()


def _signed_in_user_id(request: Request, cookie: str | None) -> int | None:
    user_id, _, signature = (cookie or "").partition(".")
    if not user_id.isdigit() or not hmac.compare_digest(
        signature, _signature(request, int(user_id))
    ):
        return None
    return int(user_id)


SessionCookie = Annotated[str | None, Cookie(alias=COOKIE)]


@router.get("/login", response_class=HTMLResponse)
async def login_page() -> str:
    return LOGIN_PAGE


@router.post("/session", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def sign_in(credentials: Credentials, request: Request, session: SessionDep) -> Response:
    valid_keys: frozenset[str] = request.app.state.settings.api_keys
    key_ok = any(
        secrets.compare_digest(credentials.api_key.encode(), key.encode()) for key in valid_keys
    )
    user = await session.scalar(select(User).where(User.email == credentials.email))
    if not key_ok or user is None:
        raise Unauthorized("Unknown email or wrong API key")
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.set_cookie(
        COOKIE, f"{user.id}.{_signature(request, user.id)}", httponly=True, samesite="strict"
    )
    return response


@router.get("/my/items", response_class=HTMLResponse, response_model=None)
async def my_items_page(
    request: Request, session: SessionDep, cookie: SessionCookie = None
) -> HTMLResponse | RedirectResponse:
    user_id = _signed_in_user_id(request, cookie)
    if user_id is None:
        return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    user = await services.get_user(session, user_id)
    items = await services.list_items_for_user(session, user_id, limit=100, offset=0)
    rows = "".join(
        f"<li>{html.escape(item.title)} ({item.price_cents} cents)</li>" for item in items
    )
    return HTMLResponse(ITEMS_PAGE.format(name=html.escape(user.name), items=rows))


@router.post("/my/items", status_code=status.HTTP_201_CREATED)
async def add_my_item(
    data: ItemCreate, request: Request, session: SessionDep, cookie: SessionCookie = None
) -> ItemRead:
    user_id = _signed_in_user_id(request, cookie)
    if user_id is None:
        raise Unauthorized("Sign in first")
    return ItemRead.model_validate(await services.create_item(session, user_id, data))
