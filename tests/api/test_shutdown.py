"""SIGTERM lets a request in flight finish: a rolling deploy drops nothing acknowledged."""

import asyncio
import signal
import time

import httpx

from tests.servers import Server, environment

REGISTER = """mutation { register(input: {email: "slow@example.com", password: "long enough pw"})
  { __typename } }"""


async def test_sigterm_waits_for_the_request_in_flight(tmp_path):
    # Costly password hashing makes registering take a good second: long enough to stop in.
    env = environment(
        f"sqlite+aiosqlite:///{tmp_path / 'bank.db'}",
        BANKQL_PASSWORD_TIME_COST="40",
        BANKQL_PASSWORD_MEMORY_KIB="65536",
        # On a busy machine that hash may take several seconds: well within the deadline.
        BANKQL_REQUEST_TIMEOUT_S="60",
    )
    server = Server(env).start()
    try:
        sent = asyncio.Event()

        async def trace(event: str, info: dict) -> None:
            if event == "http11.send_request_body.complete":
                sent.set()

        async with httpx.AsyncClient(timeout=30) as http:
            request = asyncio.create_task(
                http.post(
                    f"{server.url}/graphql",
                    json={"query": REGISTER},
                    extensions={"trace": trace},
                )
            )
            # Signal only once the whole request is on the wire, plus a moment for the
            # server to read it, so the signal cannot overtake it on a busy machine.
            await asyncio.wait_for(sent.wait(), 10)
            await asyncio.sleep(0.3)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            response = await request
        exit_code = await asyncio.to_thread(server.process.wait, 30)
    finally:
        server.kill()
    assert response.status_code == 200
    assert response.json().get("data") == {"register": {"__typename": "AuthPayload"}}, (
        response.json()
    )
    # After finishing its work uvicorn hands the signal back, so the exit reads as SIGTERM's.
    assert exit_code in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 30
