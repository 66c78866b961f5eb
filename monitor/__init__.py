"""The web front: REST API, live monitor, agent desktop and reports (aiohttp)."""
