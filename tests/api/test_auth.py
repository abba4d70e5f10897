"""Registering, signing in, and what a token does and does not open."""

import asyncio
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from domain.model import SessionId, UserId
from gql.server.auth import SignedIn, TokenCodec
from tests.api.graphql import ACCOUNTS, LOGIN, OPEN, REGISTER, GraphQLClient
from tests.conftest import TEST_SECRET_KEY

VIEWER = "{ viewer { id email role } }"
PASSWORD = "correct horse battery"


async def register(anonymous, email, password=PASSWORD):
    body = await anonymous.data(REGISTER, input={"email": email, "password": password})
    return body["register"]


async def login(anonymous, email, password=PASSWORD):
    return (await anonymous.data(LOGIN, input={"email": email, "password": password}))["login"]


async def test_registering_returns_a_token_that_signs_the_user_in(anonymous):
    payload = await register(anonymous, "  Alice@Example.com ")
    assert payload["__typename"] == "AuthPayload"
    assert payload["user"]["email"] == "alice@example.com"
    assert payload["user"]["role"] == "CUSTOMER"
    expires = datetime.fromisoformat(payload["expiresAt"])
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    viewer = (await GraphQLClient(anonymous.http, payload["token"]).data(VIEWER))["viewer"]
    assert viewer == {"id": payload["user"]["id"], "email": "alice@example.com", "role": "CUSTOMER"}


async def test_an_email_is_one_user_whatever_its_case(anonymous):
    await register(anonymous, "alice@example.com")
    again = await register(anonymous, "ALICE@Example.COM", "another password")
    assert again == {"__typename": "EmailAlreadyRegistered", "message": again["message"]}


async def test_concurrent_registrations_of_one_address_make_one_user(anonymous):
    results = await asyncio.gather(*(register(anonymous, "race@example.com") for _ in range(4)))
    kinds = sorted(result["__typename"] for result in results)
    assert kinds == ["AuthPayload"] + ["EmailAlreadyRegistered"] * 3


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not an email", PASSWORD, "email"),
        ("a@", PASSWORD, "email"),
        ("", PASSWORD, "email"),
        ("a@example.com", "elevenchars", "password"),
        ("a@example.com", "x" * 257, "password"),
    ],
)
async def test_bad_registrations_name_the_field(anonymous, email, password, field):
    result = await register(anonymous, email, password)
    assert (result["__typename"], result["field"]) == ("ValidationError", field)


async def test_passwords_of_12_and_256_characters_are_accepted(anonymous):
    assert (await register(anonymous, "a@example.com", "x" * 12))["__typename"] == "AuthPayload"
    assert (await register(anonymous, "b@example.com", "y" * 256))["__typename"] == "AuthPayload"


async def test_login_checks_the_password(anonymous):
    await register(anonymous, "alice@example.com")
    ok = await login(anonymous, "ALICE@example.com")
    assert ok["__typename"] == "AuthPayload" and ok["user"]["email"] == "alice@example.com"
    wrong = await login(anonymous, "alice@example.com", "wrong password!")
    unknown = await login(anonymous, "nobody@example.com")
    assert wrong["__typename"] == unknown["__typename"] == "InvalidCredentials"
    assert wrong["message"] == unknown["message"]


async def test_viewer_is_null_without_a_token(anonymous):
    assert (await anonymous.data(VIEWER))["viewer"] is None


@pytest.mark.parametrize(
    "document",
    [
        ACCOUNTS,
        '{ node(id: "QWNjb3VudDox") { id } }',
        '{ account(id: "QWNjb3VudDox") { id } }',
        '{ transaction(id: "VHJhbnNhY3Rpb246MQ") { id } }',
        "{ ledgerAudit { ok } }",
    ],
)
async def test_queries_need_a_signed_in_user(anonymous, document):
    body = await anonymous.request(document)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_mutations_need_a_signed_in_user_and_touch_nothing(anonymous, gql):
    account = await gql.open_account(initial_deposit="10")
    other = await gql.open_account(name="Other")
    attempts = [
        (OPEN, {"input": {"name": "x", "currency": "EUR"}}),
        (
            "mutation($i: RenameAccountInput!) { renameAccount(input: $i) { __typename } }",
            {"i": {"accountId": account["id"], "name": "stolen"}},
        ),
        (
            "mutation($i: CloseAccountInput!) { closeAccount(input: $i) { __typename } }",
            {"i": {"accountId": other["id"]}},
        ),
        (
            "mutation($i: DepositInput!) { deposit(input: $i) { __typename } }",
            {"i": {"accountId": account["id"], "amount": {"amount": "1", "currency": "EUR"}}},
        ),
        (
            "mutation($i: WithdrawInput!) { withdraw(input: $i) { __typename } }",
            {"i": {"accountId": account["id"], "amount": {"amount": "1", "currency": "EUR"}}},
        ),
        (
            "mutation($i: TransferInput!) { transfer(input: $i) { __typename } }",
            {
                "i": {
                    "sourceAccountId": account["id"],
                    "destinationAccountId": other["id"],
                    "amount": {"amount": "1", "currency": "EUR"},
                }
            },
        ),
    ]
    for document, variables in attempts:
        body = await anonymous.request(document, **variables)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", document
    page = (await gql.data(ACCOUNTS))["accounts"]
    assert [e["node"]["name"] for e in page["edges"]] == ["Main", "Other"]
    assert [e["node"]["status"] for e in page["edges"]] == ["OPEN", "OPEN"]
    assert await gql.balance(account["id"]) == "10.00"


def forged(user_id: str, key: str = TEST_SECRET_KEY, session_id: str = "1", **changes):
    now = datetime.now(UTC)
    claims = {"sub": user_id, "sid": session_id, "iat": now, "exp": now + timedelta(hours=1)}
    claims |= changes
    return jwt.encode(claims, key, algorithm="HS256")


def bad_tokens(user_id: str, session_id: str, good: str) -> dict[str, str]:
    now = datetime.now(UTC)
    header, payload, signature = good.split(".")
    # The first character carries six whole bits of the signature, so changing it
    # always changes the decoded bytes (the last one carries padding bits too).
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    unsigned = jwt.encode(
        {"sub": user_id, "iat": now, "exp": now + timedelta(hours=1)}, None, algorithm="none"
    )
    return {
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
        "tampered": f"{header}.{payload}.{tampered}",
        "other payload": f"{header}.{forged(str(int(user_id) + 1)).split('.')[1]}.{signature}",
        "expired": forged(user_id, exp=now - timedelta(seconds=1), iat=now - timedelta(hours=2)),
        "wrongly signed": forged(user_id, key="another-key-that-is-long-enough-to-sign"),
        "unsigned": unsigned,
        "without expiry": jwt.encode({"sub": user_id, "iat": now}, TEST_SECRET_KEY, "HS256"),
        "unknown user": forged("987654"),
        "non-numeric subject": forged("alice"),
        "without session": jwt.encode(
            {"sub": user_id, "iat": now, "exp": now + timedelta(hours=1)}, TEST_SECRET_KEY, "HS256"
        ),
        "unknown session": forged(user_id, session_id="987654"),
        "another user's session": forged(str(int(user_id) + 1), session_id=session_id),
        "non-numeric session": forged(user_id, session_id="one"),
    }


async def test_every_bad_token_counts_as_no_token(anonymous, app):
    payload = await register(anonymous, "alice@example.com")
    # Bob exists, so that a token naming Alice's session for him names a real user.
    await register(anonymous, "bob@example.com")
    signed_in = app.state.tokens.verify(payload["token"])
    user_id, session_id = str(signed_in.user_id), str(signed_in.session_id)
    assert (
        await GraphQLClient(anonymous.http, forged(user_id, session_id=session_id)).data(VIEWER)
    )["viewer"], "a well-forged token is taken, so the bad ones below are refused for their flaw"
    for kind, token in bad_tokens(user_id, session_id, payload["token"]).items():
        client = GraphQLClient(anonymous.http, token)
        assert (await client.data(VIEWER))["viewer"] is None, kind
        body = await client.request(ACCOUNTS)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", kind


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer a b", "bearer  "])
async def test_authorization_headers_that_are_not_bearer_tokens_are_no_token(anonymous, header):
    response = await anonymous.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": header}
    )
    assert response.json()["data"] == {"viewer": None}


async def test_the_scheme_is_case_insensitive(anonymous):
    payload = await register(anonymous, "alice@example.com")
    response = await anonymous.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"bearer {payload['token']}"}
    )
    assert response.json()["data"]["viewer"]["email"] == "alice@example.com"


def test_tokens_carry_subject_issue_and_expiry_and_pin_the_algorithm():
    codec = TokenCodec(TEST_SECRET_KEY, timedelta(minutes=5))
    issued = codec.issue(UserId(7), SessionId(3))
    claims = jwt.decode(issued.token, TEST_SECRET_KEY, algorithms=["HS256"])
    assert claims["sub"] == "7" and claims["sid"] == "3" and claims["exp"] - claims["iat"] == 300
    assert codec.verify(issued.token) == SignedIn(UserId(7), issued.expires_at, SessionId(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short key for HS512 is the point here
        hs512 = jwt.encode(
            {"sub": "7", "iat": claims["iat"], "exp": claims["exp"]}, TEST_SECRET_KEY, "HS512"
        )
    assert codec.verify(hs512) is None
