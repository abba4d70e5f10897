"""The GraphQL edge: Strawberry schema, resolvers, the Starlette app and the command line."""
