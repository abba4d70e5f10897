import pytest

from domain.model import Role
from domain.services import UserService
from gql.context import password_hashing, sql_unit_of_work
from persistence.database import make_session_factory
from tests.api.graphql import LOGIN, GraphQLClient
from tests.conftest import settings_for

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "administrator password"


@pytest.fixture
def anonymous(client) -> GraphQLClient:
    """No token at all."""
    return GraphQLClient(client)


@pytest.fixture
async def gql(anonymous) -> GraphQLClient:
    """Alice, a signed-in customer."""
    return await anonymous.signed_up("alice@example.com")


@pytest.fixture
async def bob(anonymous) -> GraphQLClient:
    """Bob, another signed-in customer."""
    return await anonymous.signed_up("bob@example.com")


@pytest.fixture
async def admin(app, anonymous, database_url) -> GraphQLClient:
    """A signed-in administrator, created the way `bankql create-admin` does."""
    settings = settings_for(database_url)
    users = UserService(
        sql_unit_of_work(make_session_factory(app.state.engine)), password_hashing(settings)
    )
    await users.register(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role=Role.ADMIN)
    result = await anonymous.data(LOGIN, input={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    return GraphQLClient(anonymous.http, result["login"]["token"])
