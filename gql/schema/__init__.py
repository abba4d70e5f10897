"""What clients see: the GraphQL types, resolvers, errors and limits of the schema."""
