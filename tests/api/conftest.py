import pytest

from tests.api.graphql import GraphQLClient


@pytest.fixture
def gql(client) -> GraphQLClient:
    return GraphQLClient(client)
