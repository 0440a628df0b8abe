"""Stand-in of modules/api: the parts of the WebUI's REST API that reach an extension's scripts."""
