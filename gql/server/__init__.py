"""How the schema is served: the app, HTTP and WebSocket, middleware, settings, the command."""
