"""The client layer: the app with its lifespan running, and the HTTP client that talks to it."""
