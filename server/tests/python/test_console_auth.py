"""Console sign-in: the master key, users' emails and Argon2id passwords,
sessions kept in the store (signing out, a new password or a block ends them),
sign-in attempts limited, and cross-site form posts refused."""

import uuid

import httpx

from conftest import MASTER_KEY, wait_until


def browser(url, address=None):
    """A cookie-keeping client that does not follow redirects, from its own address."""
    headers = {"x-forwarded-for": address or f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}
    return httpx.Client(base_url=url, follow_redirects=False, timeout=30, headers=headers)


def admin(url):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def sign_in(b, password, email="", next_path="/ui/models"):
    return b.post("/ui/session", data={"email": email, "password": password, "next": next_path})


def signed_in(b):
    # A page every role may open (models are for admins).
    r = b.get("/ui/keys", headers={"accept": "text/html"})
    return r.status_code == 200


def new_user(url, password="correct horse battery", role="internal_user"):
    email = f"user-{uuid.uuid4().hex[:8]}@Example.com"
    with admin(url) as a:
        r = a.post("/user/new", json={"user_email": email, "password": password, "user_role": role})
        assert r.status_code == 200, r.text
        assert "password" not in r.text and "argon2" not in r.text
        return r.json()["user_id"], email


def test_master_key_signs_in_and_signing_out_ends_the_session(gateway):
    with browser(gateway.url) as b:
        assert not signed_in(b)
        r = sign_in(b, MASTER_KEY, next_path="/ui/models?q=gpt")
        assert r.status_code in (302, 303) and r.headers["location"] == "/ui/models?q=gpt"
        cookie = r.headers["set-cookie"]
        assert "tollgate_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert signed_in(b)
        session_cookie = dict(b.cookies)
        r = b.post("/ui/logout")
        assert r.status_code in (302, 303) and r.headers["location"] == "/ui/login"
    # The old cookie replayed after signing out is worth nothing: the session is gone from the store.
    with browser(gateway.url) as b:
        b.cookies.update(session_cookie)
        assert not signed_in(b)
    # The older form field still works.
    with browser(gateway.url) as b:
        r = b.post("/ui/session", data={"master_key": MASTER_KEY})
        assert r.headers["location"] == "/ui/dashboard"
        assert signed_in(b)


def test_users_sign_in_with_email_and_password(gateway):
    user_id, email = new_user(gateway.url)
    with browser(gateway.url) as b:
        r = sign_in(b, "correct horse battery", email=email.upper())
        assert r.headers["location"] == "/ui/models", r.headers["location"]
        assert signed_in(b)


def test_wrong_password_and_unknown_email_get_the_same_answer(gateway):
    _, email = new_user(gateway.url)
    with browser(gateway.url) as b:
        wrong = sign_in(b, "not the password", email=email)
        unknown = sign_in(b, "not the password", email="nobody-" + email)
        master_as_user = sign_in(b, MASTER_KEY, email=email)
        assert not signed_in(b)
    for r in (wrong, unknown, master_as_user):
        assert r.status_code in (302, 303)
        assert r.headers["location"].startswith("/ui/login?error=invalid&next=/ui/models&email=")
        assert "set-cookie" not in r.headers or "tollgate_session=" not in r.headers["set-cookie"]
    # The email typed is kept for the form; the password never is.
    assert "not%20the%20password" not in wrong.headers["location"]


def test_passwords_are_checked_and_never_shown(gateway):
    with admin(gateway.url) as a:
        r = a.post("/user/new", json={"user_email": f"s-{uuid.uuid4().hex[:6]}@example.com", "password": "short"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "password"
        user_id, _ = new_user(gateway.url)
        info = a.get("/user/info", params={"user_id": user_id}).text
        assert "password" not in info and "argon2" not in info


def test_a_new_password_or_a_block_ends_the_users_sessions(gateway):
    user_id, email = new_user(gateway.url)
    with browser(gateway.url) as b, admin(gateway.url) as a:
        sign_in(b, "correct horse battery", email=email)
        assert signed_in(b)
        assert a.post("/user/update", json={"user_id": user_id, "password": "a brand new one"}).status_code == 200
        assert not signed_in(b)
        assert sign_in(b, "correct horse battery", email=email).headers["location"].startswith("/ui/login?error=invalid")
        sign_in(b, "a brand new one", email=email)
        assert signed_in(b)
        assert a.post("/user/update", json={"user_id": user_id, "blocked": True}).status_code == 200
        assert not signed_in(b)
        # Nor can a blocked user sign in again.
        assert sign_in(b, "a brand new one", email=email).headers["location"].startswith("/ui/login?error=invalid")


def test_sign_in_attempts_are_limited_per_account_and_per_address(gateway):
    _, email = new_user(gateway.url)
    with browser(gateway.url) as b:
        for _ in range(10):
            assert "error=invalid" in sign_in(b, "guess", email=email).headers["location"]
        # The eleventh attempt in the minute is refused even with the right password.
        r = sign_in(b, "correct horse battery", email=email)
        assert "error=limited" in r.headers["location"]
        assert not signed_in(b)
    # The same account from another address is limited too (per account) ...
    with browser(gateway.url) as b:
        assert "error=limited" in sign_in(b, "correct horse battery", email=email).headers["location"]
    # ... and one address guessing across accounts is limited (per address).
    with browser(gateway.url, address="10.77.0.1") as b:
        for i in range(10):
            sign_in(b, "guess", email=f"spray-{i}-{email}")
        assert "error=limited" in sign_in(b, MASTER_KEY).headers["location"]
    page = httpx.get(gateway.url + "/ui/login?error=limited").text
    assert "Too many sign-in attempts" in page


def test_successful_sign_ins_do_not_use_up_the_allowance(gateway):
    # Many people behind one address sign in at once: only failures count.
    users = [new_user(gateway.url)[1] for _ in range(12)]
    for email in users:
        with browser(gateway.url, address="10.77.0.2") as b:
            sign_in(b, "correct horse battery", email=email)
            assert signed_in(b)
    with browser(gateway.url, address="10.77.0.2") as b:
        for _ in range(12):
            sign_in(b, "correct horse battery", email=users[0])
        assert signed_in(b)


def test_cross_site_posts_are_refused(gateway):
    with browser(gateway.url) as b:
        # Login CSRF: a form on another site cannot sign the browser in.
        r = b.post("/ui/session", data={"password": MASTER_KEY}, headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "another origin" in r.text
        assert not signed_in(b)
        r = b.post("/ui/session", data={"password": MASTER_KEY}, headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        # Same origin is fine.
        r = b.post("/ui/session", data={"password": MASTER_KEY}, headers={"origin": gateway.url})
        assert r.status_code in (302, 303) and signed_in(b)
        # A cross-site post cannot sign the user out, nor call a server function.
        assert b.post("/ui/logout", headers={"origin": "https://evil.example"}).status_code == 403
        assert b.post("/ui/api/list_model_groups", headers={"origin": "null"}).status_code == 403
        assert signed_in(b)
        r = b.post("/ui/api/list_model_groups", data={"query": "", "page": "1"}, headers={"origin": gateway.url})
        assert r.status_code == 200 and r.json()["groups"], r.text


def test_the_playground_calls_the_gateway_as_the_signed_in_user(gateway):
    user_id, email = new_user(gateway.url)
    origin = {"origin": gateway.url.rstrip("/")}
    body = {"model": "gpt-mock", "messages": [{"role": "user", "content": "from the playground"}], "enable_history": True}
    with browser(gateway.url) as b:
        # No session: a JSON 401, not the sign-in page.
        r = b.post("/ui/v1/chat/completions", json=body, headers=origin)
        assert r.status_code == 401 and "error" in r.json()
        sign_in(b, "correct horse battery", email=email)
        # Another site's page cannot use the session.
        r = b.post("/ui/v1/chat/completions", json=body, headers={"origin": "https://evil.example"})
        assert r.status_code == 403
        r = b.post("/ui/v1/chat/completions", json=body, headers=origin)
        assert r.status_code == 200, r.text
        sid = r.headers["x-session-id"]
        rid = r.headers["x-request-id"]
        # Streams come as SSE.
        with b.stream("POST", "/ui/v1/chat/completions", json={**body, "stream": True, "session_id": sid}, headers=origin) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            assert "data: [DONE]" in "".join(s.iter_text())
        listed = b.post("/ui/session-ids", json={}, headers=origin).json()["sessions"]
        assert [x["session_id"] for x in listed] == [sid]
        assert any(m["id"] == "gpt-mock" for m in b.get("/ui/v1/models").json()["data"])
    # An admin signed in with the master key lists the master key's own
    # sessions in the playground, not every user's.
    with browser(gateway.url) as b:
        sign_in(b, MASTER_KEY)
        r = b.post("/ui/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": "the admin's own"}]}, headers=origin)
        assert r.status_code == 200, r.text
        mine = r.headers["x-session-id"]
        listed = [x["session_id"] for x in b.post("/ui/session-ids", json={}, headers=origin).json()["sessions"]]
        assert mine in listed and sid not in listed
    # The call is the user's: logged under their id, counted in their spend.
    with admin(gateway.url) as a:
        assert wait_until(lambda: len(a.get("/spend/logs", params={"request_id": rid}).json()) == 1, timeout=10)
        row = a.get("/spend/logs", params={"request_id": rid}).json()[0]
        assert row["user"] == user_id and row["spend"] > 0
        assert wait_until(lambda: a.get("/user/info", params={"user_id": user_id}).json()["user_info"]["spend"] > 0, timeout=10)
