"""The test suite. Subpackages mirror extension/: device/, engine/, loading/, cli/, ui/, webui/, toplevel/ (extension/*.py);
cross-cutting tests (README, install, package, isolation, browser, offline, fixtures) stay here."""
