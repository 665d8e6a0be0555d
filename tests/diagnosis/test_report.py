"""Behaviours: the report section of a failing test shows each request, the exceptions
the app raised behind its responses, the SQL grouped by request, and replay lines."""

from __future__ import annotations

import pytest

from tests.diagnosis.conftest import NO_HANG


def test_exchange_shows_request_response_route_and_json_bodies(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_create(client):
            response = await client.post("/things", params={"name": "lamp"},
                                         headers={"x-trace": "abc"})
            assert response.status_code == 200
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- fastapi-e2e: requests, server exceptions and SQL -*",
            "1 request(s), 0 server exception(s), * SQL statement(s); newest last*",
            "[[]1] POST http://testserver/things?name=lamp -> 201 Created in * ms",
            "    route: /things -> shop:create_app.<locals>.create_thing (shop.py:*)",
            "    request headers (+* httpx defaults, -vv shows them):",
            "      x-trace: abc",
            "    response headers:",
            "      content-length: *",
            "      content-type: application/json",
            "    response body (application/json, * bytes):",
            "      {",
            '        "id": *,',
            '        "name": "lamp"',
            "      }",
        ]
    )


def test_requests_are_listed_in_order_newest_last(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_two(client):
            await client.get("/things")
            await client.get("/greeting")
            assert False
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.stdout.fnmatch_lines(
        ["[[]1] GET http://testserver/things -> 200 OK*", "[[]2] GET http://testserver/greeting*"]
    )


@pytest.mark.parametrize(
    ("path", "how", "exception"),
    [
        pytest.param(
            "/report/handled",
            "handled: an exception handler or middleware turned it into this response",
            "report_app.Handled: lookup failed behind a 500 handler",
            id="exception-handler-for-a-class",
        ),
        pytest.param(
            "/report/any",
            "unhandled: it propagated out of the app",
            "RuntimeError: caught by the Exception handler",
            id="exception-handler-for-Exception",
        ),
        pytest.param(
            "/report/swallowed",
            "handled: an exception handler or middleware turned it into this response",
            "KeyError: 'swallowed by middleware'",
            id="middleware-catching-call_next",
        ),
    ],
)
def test_exception_behind_an_error_response_is_shown_with_its_traceback(
    report: pytest.Pytester, path: str, how: str, exception: str
) -> None:
    report.makepyfile(
        f"""
        async def test_it(client):
            response = await client.get("{path}")
            assert response.status_code == 200
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       fastapi-e2e: the app raised 1 exception(s) while this test ran*",
            f"[[]1] GET http://testserver{path} -> 5* in * ms",
            f"    server exception ({how}):",
            f"      {exception}",
            "      raised at report_app.py:* in *",
            "      Traceback (most recent call last; framework frames collapsed*",
            '        File "*report_app.py", line *',
            f"      {exception}",
        ]
    )


def test_framework_frames_are_collapsed_and_shown_with_vv(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_it(client):
            assert (await client.get("/boom")).status_code == 200
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.stdout.fnmatch_lines(["        ... * frames in *starlette*"])
    assert "/starlette/" not in result.stdout.str()
    result = report.runpytest_subprocess("-vv", timeout=NO_HANG)
    result.stdout.fnmatch_lines(['*File "*/starlette/*", line *'])


def test_passing_test_stays_green_when_the_app_raised(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_it(client):
            assert (await client.get("/report/handled")).status_code == 500
        """
    )
    report.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_strict_server_errors_fails_a_passing_test_the_app_raised_in(
    report: pytest.Pytester,
) -> None:
    report.makepyfile(
        """
        async def test_raised(client):
            assert (await client.get("/report/handled")).status_code == 500

        async def test_4xx_is_not_a_server_error(client):
            await client.post("/things", params={"name": "a"})
            assert (await client.post("/things", params={"name": "a"})).status_code == 409
        """
    )
    result = report.runpytest_subprocess("--e2e-strict-server-errors", timeout=NO_HANG)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_raised*",
            "The test passed, but the app raised 1 exception(s) behind its responses (first: "
            "report_app.Handled: lookup failed behind a 500 handler during GET /report/handled)*",
            "*server exception (handled: *",
        ]
    )


def test_strict_server_errors_from_ini(report: pytest.Pytester) -> None:
    report.makeini("[pytest]\ne2e_strict_server_errors = true\n")
    report.makepyfile(
        """
        async def test_raised(client):
            assert (await client.get("/boom")).status_code == 500
        """
    )
    report.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(failed=1)


def test_bad_strict_server_errors_ini_value_is_a_usage_error(report: pytest.Pytester) -> None:
    report.makeini("[pytest]\ne2e_strict_server_errors = maybe\n")
    report.makepyfile("def test_x():\n    pass\n")
    result = report.runpytest_subprocess(timeout=NO_HANG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*e2e_strict_server_errors from ini is 'maybe'; it must be true or false*"]
    )


def test_sql_is_grouped_by_request_and_test_body_with_parameters_and_rows(
    report: pytest.Pytester,
) -> None:
    report.makepyfile(
        """
        from sqlalchemy import text

        async def test_sql(client, db_session):
            await db_session.execute(text("SELECT CAST(:n AS integer) AS n"), {"n": 41})
            await client.post("/things", params={"name": "sofa"})
            await client.get("/things")
            assert False
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.stdout.fnmatch_lines(
        [
            "[[]test body]",
            "    SQL (2 statements, * ms):",
            "      1. SAVEPOINT sa_savepoint_1  [[]savepoint, * ms]",
            "      2. SELECT CAST($1 AS integer) AS n  [[]1 row, * ms]",
            "           parameters: (41,)",
            "[[]1] POST http://testserver/things?name=sofa -> 201 Created*",
            "    SQL (*",
            "      1. SAVEPOINT e2e_1  [[]savepoint, * ms]",
            "      2. INSERT INTO things (name) VALUES ($1::VARCHAR) RETURNING things.id*",
            "           parameters: ('sofa',)",
            "*RELEASE SAVEPOINT e2e_1  [[]savepoint*",
            "[[]2] GET http://testserver/things -> 200 OK*",
            "      1. SAVEPOINT*",
            "      2. SELECT things.name*FROM things ORDER BY things.id  [[]1 row, * ms]",
        ]
    )


def test_failing_exchange_carries_curl_and_client_lines(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_it(client):
            response = await client.post(
                "/things?name=x", json={"note": "it's"}, headers={"x-trace": "t1"}
            )
            assert response.status_code == 500
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.stdout.fnmatch_lines(
        [
            "    reproduce:",
            "      curl -X POST 'http://localhost:8000/things?name=x' -H 'x-trace: t1' "
            "-H 'content-type: application/json' --data-raw '{\"note\": \"it'\"'\"'s\"}'",
            "      await client.post('/things?name=x', json={'note': \"it's\"}, "
            "headers={'x-trace': 't1'})",
        ]
    )


def test_long_bodies_are_cut_and_shown_whole_with_vv(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_it(client):
            assert (await client.get("/report/big")).status_code == 500
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.stdout.fnmatch_lines(["      ... * more characters (-vv shows the whole body)"])
    assert "END-OF-BODY" not in result.stdout.str()
    result = report.runpytest_subprocess("-vv", timeout=NO_HANG)
    result.stdout.fnmatch_lines(['*"text": "xxx*END-OF-BODY"'])


def test_secrets_appear_nowhere_in_the_output(report: pytest.Pytester) -> None:
    # The secrets live in a helper so that pytest's own traceback cannot show them.
    report.makepyfile(
        login="""
        async def login(client):
            return await client.post(
                "/report/login?api_key=query-key-RT77",
                json={"email": "a@example.com", "password": "hunter2-PW99"},
                headers={"Authorization": "Bearer bearer-token-JK55",
                         "Cookie": "session=cookie-in-DF21"},
            )
        """,
        test_login="""
        from login import login

        async def test_login(client):
            response = await login(client)
            assert response.status_code == 201
        """,
    )
    result = report.runpytest_subprocess("--e2e-trace=on", "-vv", timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*authorization: ***",
            "*cookie: ***",
            '*"password": "***"*',
            "*set-cookie: ***",
            '*"access_token": "***"*',
            "*parameters: ('a@example.com', '***')*",
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    files = [p.read_text() for p in (report.path / ".e2e-traces").iterdir()]
    assert len(files) == 2
    for secret in (
        "query-key-RT77",
        "hunter2-PW99",
        "bearer-token-JK55",
        "cookie-in-DF21",
        "cookie-value-ZX81",
        "token-value-QL42",
    ):
        assert secret not in output
        for text in files:
            assert secret not in text


def test_recording_can_be_switched_off_to_measure_its_cost(
    report: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # E2E_RECORDING=off is the benchmark's knob: same test, no section.
    monkeypatch.setenv("E2E_RECORDING", "off")
    report.makepyfile(
        """
        async def test_create(client):
            assert (await client.post("/things", params={"name": "lamp"})).status_code == 200
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    assert "requests, server exceptions and SQL" not in result.stdout.str()
