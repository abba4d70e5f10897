"""A small GraphQL client over the app's HTTP interface, and the documents the tests send."""

from __future__ import annotations

from typing import Any

import httpx


def post_scope(
    headers: list[tuple[bytes, bytes]], server: tuple[str, int] = ("127.0.0.1", 8000)
) -> dict[str, Any]:
    """The ASGI scope of a POST /graphql from 127.0.0.1, to call the app with no server."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": server,
        "state": {},
    }


class GraphQLClient:
    """Sends documents as one user (the token's), or anonymously without a token."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def signed_up(self, email: str, password: str = "correct horse battery") -> GraphQLClient:
        """A client for a newly registered customer."""
        result = await self.data(REGISTER, input={"email": email, "password": password})
        assert result["register"]["__typename"] == "AuthPayload", result
        return GraphQLClient(self.http, result["register"]["token"])

    async def request(self, query: str, **variables: Any) -> dict[str, Any]:
        """The whole response body; the status must be 200."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        """The data of a response that must have no top-level errors."""
        body = await self.request(query, **variables)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    async def open_account(
        self, name: str = "Main", currency: str = "EUR", initial_deposit: str | None = None
    ) -> dict[str, Any]:
        result = (
            await self.data(
                OPEN, input={"name": name, "currency": currency, "initialDeposit": initial_deposit}
            )
        )["openAccount"]
        assert result["__typename"] == "AccountPayload", result
        account: dict[str, Any] = result["account"]
        return account

    async def deposit(
        self, account_id: str, amount: str, currency: str = "EUR", **extra: Any
    ) -> dict[str, Any]:
        payload = {"accountId": account_id, "amount": {"amount": amount, "currency": currency}}
        result: dict[str, Any] = (await self.data(DEPOSIT, input=payload | extra))["deposit"]
        return result

    async def withdraw(
        self, account_id: str, amount: str, currency: str = "EUR", **extra: Any
    ) -> dict[str, Any]:
        payload = {"accountId": account_id, "amount": {"amount": amount, "currency": currency}}
        result: dict[str, Any] = (await self.data(WITHDRAW, input=payload | extra))["withdraw"]
        return result

    async def transfer(
        self, source: str, destination: str, amount: str, currency: str = "EUR", **extra: Any
    ) -> dict[str, Any]:
        payload = {
            "sourceAccountId": source,
            "destinationAccountId": destination,
            "amount": {"amount": amount, "currency": currency},
        }
        result: dict[str, Any] = (await self.data(TRANSFER, input=payload | extra))["transfer"]
        return result

    async def balance(self, account_id: str) -> str:
        account = (await self.data(ACCOUNT, id=account_id))["account"]
        amount: str = account["balance"]["amount"]
        return amount


ACCOUNT_FIELDS = (
    "id name currency status createdAt balance { amount currency } owner { id email role }"
)
ERROR_SELECTIONS = {
    "ValidationError": "field",
    "AccountNotFound": "accountId",
    "AccountClosed": "accountId",
    "AccountNotEmpty": "accountId balance { amount currency }",
    "InsufficientFunds": "accountId available { amount currency } requested { amount currency }",
    "CurrencyMismatch": "expected received",
    "IdempotencyConflict": "idempotencyKey",
}
MOVEMENT_ERRORS = [
    "ValidationError",
    "AccountNotFound",
    "AccountClosed",
    "CurrencyMismatch",
    "InsufficientFunds",
    "IdempotencyConflict",
]


def errors(*names: str) -> str:
    spreads = " ".join(f"... on {name} {{ {ERROR_SELECTIONS[name]} }}" for name in names)
    return f"__typename ... on Error {{ message }} {spreads}"


def movement(*names: str) -> str:
    return f"""
    {errors(*names)}
    ... on MoneyMovement {{
        transaction {{ id kind amount {{ amount currency }} sourceAccountId destinationAccountId
                       description createdAt }}
        sourceAccount {{ {ACCOUNT_FIELDS} }}
        destinationAccount {{ {ACCOUNT_FIELDS} }}
    }}
    """


def account_payload(*names: str) -> str:
    return f"{errors(*names)} ... on AccountPayload {{ account {{ {ACCOUNT_FIELDS} }} }}"


OPEN = f"""mutation($input: OpenAccountInput!) {{
  openAccount(input: $input) {{ {account_payload("ValidationError")} }} }}"""
RENAME = f"""mutation($input: RenameAccountInput!) {{
  renameAccount(input: $input) {{
    {account_payload("ValidationError", "AccountNotFound", "AccountClosed")} }} }}"""
CLOSE = f"""mutation($input: CloseAccountInput!) {{
  closeAccount(input: $input) {{
    {account_payload("AccountNotFound", "AccountClosed", "AccountNotEmpty")} }} }}"""
DEPOSIT_ERRORS = [name for name in MOVEMENT_ERRORS if name != "InsufficientFunds"]
DEPOSIT = f"""mutation($input: DepositInput!) {{
  deposit(input: $input) {{ {movement(*DEPOSIT_ERRORS)} }} }}"""
WITHDRAW = f"""mutation($input: WithdrawInput!) {{
  withdraw(input: $input) {{ {movement(*MOVEMENT_ERRORS)} }} }}"""
TRANSFER = f"""mutation($input: TransferInput!) {{
  transfer(input: $input) {{ {movement(*MOVEMENT_ERRORS)} }} }}"""
AUTH_PAYLOAD = "token expiresAt user { id email role createdAt }"
REGISTER = f"""mutation($input: RegisterInput!) {{
  register(input: $input) {{
    __typename ... on AuthPayload {{ {AUTH_PAYLOAD} }} ... on Error {{ message }}
    ... on ValidationError {{ field }} }} }}"""
LOGIN = f"""mutation($input: LoginInput!) {{
  login(input: $input) {{
    __typename ... on AuthPayload {{ {AUTH_PAYLOAD} }} ... on Error {{ message }}
    ... on ValidationError {{ field }} }} }}"""
ACCOUNT = f"query($id: ID!) {{ account(id: $id) {{ {ACCOUNT_FIELDS} }} }}"
STATEMENT = """
query($id: ID!, $first: Int, $after: String) {
  account(id: $id) {
    entries(first: $first, after: $after) {
      edges { cursor node { id amount { amount currency } balanceAfter { amount currency } createdAt
                            transaction { id kind } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""
ACCOUNTS = """
query($first: Int, $after: String, $status: AccountStatus) {
  accounts(first: $first, after: $after, status: $status) {
    totalCount
    edges { cursor node { id name status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
