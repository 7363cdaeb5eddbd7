"""The web page the API serves at `/`."""
